// Flex Consumption plan (FC1, Linux) and the Python function app: system-assigned identity,
// HTTPS only, TLS 1.2, HTTP/2, CORS limited to the SPA origins, FTP and SCM basic auth off,
// deployment package in a blob container read with the app's identity.
//
// App settings are NOT set here: appsettings.bicep sets them after rbac.bicep has granted the
// identity its roles, so Key Vault references resolve on the first start. Settings that must not
// be set on Flex (FUNCTIONS_WORKER_RUNTIME, WEBSITE_RUN_FROM_PACKAGE, ...) are never set: the
// runtime is declared in functionAppConfig.runtime. siteConfig holds only properties Flex accepts
// (ftpsState, alwaysOn, linuxFxVersion and the like are rejected on Flex with ARM error 51021).

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@description('Flex Consumption plan name.')
param planName string

@description('Function app name.')
param functionAppName string

@description('URL of the blob container holding the deployment package (https://<account>.blob.<suffix>/<container>).')
param deploymentBlobContainerUrl string

@minValue(40)
@maxValue(1000)
@description('Maximum instance count.')
param maximumInstanceCount int = 100

@minValue(0)
@maxValue(20)
@description('Always-ready instances for the http group.')
param alwaysReadyHttpInstances int = 1

@allowed([
  512
  2048
  4096
])
@description('Memory per instance in MB.')
param instanceMemoryMB int = 2048

@description('Origins allowed by CORS (the SPA origins).')
param corsAllowedOrigins array

@description('Health check path; empty turns the platform health check off.')
param healthCheckPath string = '/api/health'

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption needs at least 2 always-ready instances per group and zone-redundant storage; off by default for cost (one always-ready instance). Enable it with zoneRedundant here plus storageSkuName Standard_ZRS/GZRS for production.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The SPA (browsers anywhere) and the video provider's webhooks call this API over the internet; callers authenticate with Entra ID bearer tokens or signed webhooks.
  // checkov:skip=CKV_AZURE_17: Client certificates are not used: the SPA sends bearer tokens and the provider signs its webhooks; neither can present a client certificate.
  // checkov:skip=CKV_AZURE_212: The rule wants siteConfig.numberOfWorkers > 1, which Flex Consumption does not use: instances come from functionAppConfig (always-ready http instances, default 1, plus automatic scale-out up to maximumInstanceCount).
  // checkov:skip=CKV_AZURE_78: siteConfig.ftpsState is rejected on Flex Consumption (ARM error 51021); FTP is off through basicPublishingCredentialsPolicies 'ftp' below (asserted by tests/infra/test_bicep.py).
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentBlobContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: [
          {
            name: 'http'
            instanceCount: alwaysReadyHttpInstances
          }
        ]
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      healthCheckPath: (empty(healthCheckPath)) ? null : healthCheckPath
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
  }
}

// FTP and SCM (Kudu) basic-auth publishing credentials off: deployments (azd, az functionapp
// deploy) authenticate with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = functionApp.id
output name string = functionApp.name
output principalId string = functionApp.identity.principalId
output defaultHostName string = functionApp.properties.defaultHostName
