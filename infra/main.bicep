// Meetings backend: a Python Function App on Flex Consumption, keyless.
//
// Deploy with `azd up` (azure.yaml at the repo root), or by hand:
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<name> writeIdHashKey=true ...
// docs/deploy.md explains every parameter that matters and the first-deployment steps.
//
// Every resource is a raw resource in a small module under ./modules (no registry modules), so
// pycep (tests/infra/test_bicep.py) and checkov (tests/infra/test_checkov.py) see its body.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd AZURE_ENV_NAME). Feeds the resourceToken that names every resource.')
param environmentName string

@description('Azure region for all resources. Defaults to the resource group\'s region; it must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Object ID of a developer (azd AZURE_PRINCIPAL_ID) who gets data-plane roles on storage and Key Vault so the app can run locally against these resources. Empty: no developer roles.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Principal type of principalId: User for a person, ServicePrincipal for a CI identity.')
param principalType string = 'User'

@description('Tags added to every resource.')
param tags object = {}

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
@description('Storage account redundancy. Standard_LRS is the cheapest; prefer Standard_GZRS (or Standard_ZRS) in production where the region offers it.')
param storageSkuName string = 'Standard_LRS'

// ---------------------------------------------------------------------------------------------
// Function app and plan
// ---------------------------------------------------------------------------------------------

@minValue(40)
@maxValue(1000)
@description('Flex Consumption maximum instance count (the plan allows 40 to 1000).')
param maximumInstanceCount int = 100

@minValue(0)
@maxValue(20)
@description('Always-ready instances for the http group. Default 1: a provider webhook must be answered within 3 s, which a cold start cannot guarantee. 0 scales to zero (cheaper, slow first request).')
param alwaysReadyHttpInstances int = 1

@allowed([
  512
  2048
  4096
])
@description('Memory per instance in MB (Flex Consumption sizes).')
param instanceMemoryMB int = 2048

@description('Health check path probed by the platform. Empty turns the health check off.')
param healthCheckPath string = '/api/health'

@description('The SPA\'s address (APP_BASE_URL): join links in emails are APP_BASE_URL/meetings/{id}. Empty: the Static Web App\'s own address (https://<name>.azurestaticapps.net). A bare origin, no trailing slash.')
param appBaseUrl string = ''

@description('Comma-separated origins allowed by CORS besides the Static Web App\'s own (e.g. a custom domain, or "http://localhost:5173" to call this API from a local SPA). Empty: appBaseUrl when set. Never "*".')
param spaOrigins string = ''

@description('Region of the Static Web App that hosts the SPA (Static Web Apps exist in westus2, centralus, eastus2, westeurope and eastasia only). Empty: location when it is one of them, else westeurope.')
param staticWebAppLocation string = ''

// ---------------------------------------------------------------------------------------------
// Video provider
// ---------------------------------------------------------------------------------------------

@allowed([
  'dyte'
  'realtimekit'
])
@description('VIDEO_PROVIDER: provider for new meetings.')
param videoProvider string = 'dyte'

@description('DYTE_ORG_ID. Non-empty means Dyte is configured, so DYTE_API_KEY becomes a Key Vault reference to the secret dyte-api-key.')
param dyteOrgId string = ''

@secure()
@description('Dyte API key, written to Key Vault secret dyte-api-key when non-empty. Leave empty to keep the value already in the vault (set or rotate it with az keyvault secret set).')
param dyteApiKey string = ''

@description('DYTE_API_BASE_URL. Empty: the app default (https://api.dyte.io/v2).')
param dyteApiBaseUrl string = ''

@description('REALTIMEKIT_ACCOUNT_ID. Non-empty means RealtimeKit is configured, so REALTIMEKIT_API_TOKEN becomes a Key Vault reference to realtimekit-api-token.')
param realtimekitAccountId string = ''

@description('REALTIMEKIT_APP_ID.')
param realtimekitAppId string = ''

@secure()
@description('Cloudflare API token for RealtimeKit, written to Key Vault secret realtimekit-api-token when non-empty. Leave empty to keep the value already in the vault.')
param realtimekitApiToken string = ''

@description('REALTIMEKIT_API_BASE_URL. Empty: the app default (https://api.cloudflare.com/client/v4).')
param realtimekitApiBaseUrl string = ''

@description('PRESET_HOST. Empty: the provider default (group_call_host / group-call-host).')
param presetHost string = ''

@description('PRESET_PARTICIPANT. Empty: the provider default (group_call_participant / group-call-participant).')
param presetParticipant string = ''

@description('PRESET_GUEST (organization meetings\' guests, held in the waiting room). Empty: the provider default (group_call_guest / group-call-guest).')
param presetGuest string = ''

@description('WEBHOOK_PUBLIC_KEY: Dyte\'s webhook signing key as PEM (public, not a secret). Empty: fetched from WEBHOOK_PUBLIC_KEY_URL.')
param webhookPublicKey string = ''

@description('WEBHOOK_PUBLIC_KEY_URL. Empty: the app default.')
param webhookPublicKeyUrl string = ''

@description('REALTIMEKIT_WEBHOOK_PUBLIC_KEY (PEM, public). Empty: fetched from REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL.')
param realtimekitWebhookPublicKey string = ''

@description('REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL. Empty: the app default.')
param realtimekitWebhookPublicKeyUrl string = ''

// ---------------------------------------------------------------------------------------------
// Entra ID
// ---------------------------------------------------------------------------------------------

@description('AUTH_TENANT_ID: the API\'s home tenant.')
param authTenantId string = tenant().tenantId

@description('AUTH_CLIENT_ID: the API app registration\'s client ID (token audience). Ignored when deployAppRegistration is true (the created registration is used).')
param authClientId string = ''

@description('AUTH_REQUIRED_SCOPE: the delegated scope every token must carry.')
param authRequiredScope string = 'access_as_user'

@description('Application ID URI of an existing API registration (authClientId), for the scope the SPA requests. Empty: api://<authClientId>. Ignored when deployAppRegistration is true.')
param authApplicationIdUri string = ''

@description('AUTH_ALLOWED_TENANTS: comma-separated tenant IDs whose users may sign in. Empty: the home tenant only.')
param authAllowedTenants string = ''

@description('Create the Entra app registration (API + SPA) with the Microsoft Graph Bicep extension. Needs Application.ReadWrite.All (or .OwnedBy) for the deployer.')
param deployAppRegistration bool = false

@description('Comma-separated SPA redirect URIs for the app registration (deployAppRegistration only), besides the Static Web App\'s origin, appBaseUrl and localSpaOrigin.')
param spaRedirectUris string = ''

@description('Origin of the SPA\'s local development server (Vite), registered as an SPA redirect URI with deployAppRegistration. Empty: none.')
param localSpaOrigin string = 'http://localhost:5173'

@allowed([
  'AzureADMyOrg'
  'AzureADMultipleOrgs'
])
@description('Sign-in audience of the created app registration. AzureADMultipleOrgs when AUTH_ALLOWED_TENANTS lists other tenants.')
param appSignInAudience string = 'AzureADMyOrg'

// ---------------------------------------------------------------------------------------------
// ID_HASH_KEY
// ---------------------------------------------------------------------------------------------

@description('Write ID_HASH_KEY to Key Vault in this deployment. Only on the FIRST deployment: a new key changes every public user id and provider participant id. azd passes true until its post-provision hook sets WRITE_ID_HASH_KEY=false.')
param writeIdHashKey bool = false

@secure()
@description('The ID_HASH_KEY value written when writeIdHashKey is true. Default: a new random value generated at deployment time.')
param idHashKey string = '${newGuid()}${newGuid()}' // checkov:skip=CKV_AZURE_131: Not a hardcoded value: newGuid() makes a fresh random key at deployment time (the only place ARM allows it); test_bicep.py asserts every secure parameter default is '' or newGuid()-based.

// ---------------------------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------------------------

@minValue(0)
@maxValue(1440)
@description('JOIN_EARLY_MINUTES: how long before startsAt participants may join.')
param joinEarlyMinutes int = 15

@minValue(0)
@maxValue(1440)
@description('JOIN_GRACE_MINUTES: how long after endsAt anyone may still join.')
param joinGraceMinutes int = 60

@minValue(1)
@maxValue(3650)
@description('EVENT_RETENTION_DAYS: retention of recorded webhook deliveries.')
param eventRetentionDays int = 30

@minValue(1)
@maxValue(3650)
@description('MEETING_RETENTION_DAYS: retention of cancelled or ended meetings.')
param meetingRetentionDays int = 365

@minValue(1)
@maxValue(3650)
@description('RECORDING_RETENTION_DAYS: retention of stored recordings (never longer than their meeting). A blob lifecycle rule deletes recordings older than this plus recordingRetentionMarginDays, as a backstop.')
param recordingRetentionDays int = 365

@minValue(1)
@maxValue(365)
@description('Days the blob lifecycle backstop waits past RECORDING_RETENTION_DAYS before it deletes a recording the app has not.')
param recordingRetentionMarginDays int = 7

// ---------------------------------------------------------------------------------------------
// Mail (optional: empty mailSender turns invitation email off)
// ---------------------------------------------------------------------------------------------

@description('MAIL_SENDER: mailbox that sends invitations through Microsoft Graph. Empty turns email off and no mail credential is referenced.')
param mailSender string = ''

@description('MAIL_TENANT_ID: tenant of the mail app registration. Empty: the deployment tenant (when mailSender is set).')
param mailTenantId string = ''

@description('MAIL_CLIENT_ID: client ID of the app registration with Mail.Send (application).')
param mailClientId string = ''

@allowed([
  'secret'
  'certificate'
])
@description('Which credential the mail app uses: secret (MAIL_CLIENT_SECRET from Key Vault secret mail-client-secret) or certificate (MAIL_CLIENT_CERTIFICATE from mail-client-certificate).')
param mailCredentialType string = 'secret'

@secure()
@description('The mail credential value (client secret, or the certificate as the app expects it), written to Key Vault when non-empty. Leave empty to keep the value in the vault.')
param mailClientCredential string = ''

@description('MAIL_AUTHORITY_HOST. Empty: the public cloud.')
param mailAuthorityHost string = ''

@description('GRAPH_BASE_URL. Empty: the public cloud.')
param graphBaseUrl string = ''

// ---------------------------------------------------------------------------------------------
// Monitoring and alerts
// ---------------------------------------------------------------------------------------------

@minValue(30)
@maxValue(730)
@description('Log Analytics retention in days.')
param logRetentionDays int = 30

@description('Resource ID of an existing action group notified by every alert. Empty: alerts are created and fire in the portal, but notify no one.')
param alertActionGroupId string = ''

@minValue(15)
@maxValue(1440)
@description('Alert when no verified webhook delivery (webhooks.receive with status 200) arrived for this many minutes while a meeting is live.')
param webhookSilenceMinutes int = 60

@minValue(1)
@maxValue(48)
@description('How far back the webhook-silence alert looks for meetings that started and have not ended (hours).')
param liveMeetingLookbackHours int = 12

@minValue(1)
@maxValue(100)
@description('Alert when more than this percentage of requests in 15 minutes answered 5xx.')
param http5xxPercentThreshold int = 5

@minValue(1)
@description('Minimum number of requests in the 15-minute window before the 5xx rate alert may fire.')
param http5xxMinimumRequests int = 20

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName, location))
var allTags = union(tags, { 'azd-env-name': environmentName })
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var staticWebAppRegions = [
  'westus2'
  'centralus'
  'eastus2'
  'westeurope'
  'eastasia'
]
var staticWebAppRegion = (empty(staticWebAppLocation)) ? ((contains(staticWebAppRegions, location)) ? location : 'westeurope') : staticWebAppLocation
var spaOrigin = staticWebApp.outputs.origin
var effectiveAppBaseUrl = (empty(appBaseUrl)) ? spaOrigin : appBaseUrl
var extraCorsOrigins = (empty(spaOrigins)) ? ((empty(appBaseUrl)) ? [] : [appBaseUrl]) : split(replace(spaOrigins, ' ', ''), ',')
var corsOrigins = union([spaOrigin], extraCorsOrigins)
var extraRedirectUris = (empty(spaRedirectUris)) ? [] : split(replace(spaRedirectUris, ' ', ''), ',')
var localRedirectUris = (empty(localSpaOrigin)) ? [] : [localSpaOrigin]
var redirectUris = union([spaOrigin, effectiveAppBaseUrl], localRedirectUris, extraRedirectUris)

// ---------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: allTags
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    retentionInDays: logRetentionDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: allTags
    storageAccountName: 'st${resourceToken}'
    deploymentContainerName: deploymentContainerName
    skuName: storageSkuName
    recordingRetentionDays: recordingRetentionDays
    recordingRetentionMarginDays: recordingRetentionMarginDays
  }
}

module staticWebApp 'modules/staticwebapp.bicep' = {
  name: 'staticwebapp'
  params: {
    location: staticWebAppRegion
    tags: allTags
    name: 'stapp-${resourceToken}'
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: allTags
    keyVaultName: 'kv-${resourceToken}'
    dyteApiKey: dyteApiKey
    realtimekitApiToken: realtimekitApiToken
    writeIdHashKey: writeIdHashKey
    idHashKey: idHashKey
    mailCredentialType: mailCredentialType
    mailClientCredential: mailClientCredential
  }
}

module appRegistration 'modules/appregistration.bicep' = if (deployAppRegistration) {
  name: 'appregistration'
  params: {
    uniqueName: 'meetings-api-${resourceToken}'
    displayName: 'Meetings API (${environmentName})'
    signInAudience: appSignInAudience
    spaRedirectUris: redirectUris
    scopeName: authRequiredScope
  }
}

// The created registration's client ID, else the given one. appRegistration is null when it is not
// deployed, so it is read with `.?` (Bicep warns BCP318 on a plain read of a conditional module).
var apiClientId = appRegistration.?outputs.clientId ?? authClientId
// The full scope the SPA requests: the created registration's, else the existing one's.
var existingApiScope = '${(empty(authApplicationIdUri)) ? 'api://${authClientId}' : authApplicationIdUri}/${authRequiredScope}'
var apiScope = appRegistration.?outputs.scopeUri ?? existingApiScope

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: allTags
    planName: 'plan-${resourceToken}'
    functionAppName: functionAppName
    deploymentBlobContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    instanceMemoryMB: instanceMemoryMB
    corsAllowedOrigins: corsOrigins
    healthCheckPath: healthCheckPath
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    appPrincipalId: functionApp.outputs.principalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
    storageAccountName: storage.outputs.name
    recordingsContainerName: storage.outputs.recordingsContainerName
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// App settings go on after the role assignments, so Key Vault references and identity-based
// storage resolve the first time the app starts.
module appSettings 'modules/appsettings.bicep' = {
  name: 'appsettings'
  dependsOn: [
    rbac
  ]
  params: {
    functionAppName: functionApp.outputs.name
    storageAccountName: storage.outputs.name
    blobServiceUri: storage.outputs.blobEndpoint
    queueServiceUri: storage.outputs.queueEndpoint
    tableServiceUri: storage.outputs.tableEndpoint
    keyVaultUri: keyVault.outputs.uri
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    videoProvider: videoProvider
    dyteOrgId: dyteOrgId
    dyteApiBaseUrl: dyteApiBaseUrl
    realtimekitAccountId: realtimekitAccountId
    realtimekitAppId: realtimekitAppId
    realtimekitApiBaseUrl: realtimekitApiBaseUrl
    presetHost: presetHost
    presetParticipant: presetParticipant
    presetGuest: presetGuest
    webhookPublicKey: webhookPublicKey
    webhookPublicKeyUrl: webhookPublicKeyUrl
    realtimekitWebhookPublicKey: realtimekitWebhookPublicKey
    realtimekitWebhookPublicKeyUrl: realtimekitWebhookPublicKeyUrl
    authTenantId: authTenantId
    authClientId: apiClientId
    authRequiredScope: authRequiredScope
    authAllowedTenants: authAllowedTenants
    joinEarlyMinutes: joinEarlyMinutes
    joinGraceMinutes: joinGraceMinutes
    appBaseUrl: effectiveAppBaseUrl
    mailSender: mailSender
    mailTenantId: (empty(mailTenantId)) ? tenant().tenantId : mailTenantId
    mailClientId: mailClientId
    mailCredentialType: mailCredentialType
    mailAuthorityHost: mailAuthorityHost
    graphBaseUrl: graphBaseUrl
    eventRetentionDays: eventRetentionDays
    meetingRetentionDays: meetingRetentionDays
    recordingRetentionDays: recordingRetentionDays
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: allTags
    namePrefix: resourceToken
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    actionGroupId: alertActionGroupId
    webhookSilenceMinutes: webhookSilenceMinutes
    liveMeetingLookbackHours: liveMeetingLookbackHours
    http5xxPercentThreshold: http5xxPercentThreshold
    http5xxMinimumRequests: http5xxMinimumRequests
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment; infra/scripts/postprovision.sh reads them)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_STATIC_WEB_APP_NAME string = staticWebApp.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName

@description('Base URL of the API: https://<default host name>/api.')
output API_BASE_URL string = 'https://${functionApp.outputs.defaultHostName}/api'

@description('The SPA\'s address on the Static Web App.')
output SPA_ORIGIN string = spaOrigin

@description('Entra ID sign-in host of this cloud (https://login.microsoftonline.com/ in the public cloud), for the SPA\'s authority.')
output AUTH_AUTHORITY_HOST string = environment().authentication.loginEndpoint

@description('URL to register with the video provider as the webhook endpoint.')
output WEBHOOK_URL string = 'https://${functionApp.outputs.defaultHostName}/api/webhooks/dyte'

// The non-secret settings, under their setting names, so the post-provision hook can write
// local.settings.json for running locally against these resources.
output VIDEO_PROVIDER string = videoProvider
output DYTE_ORG_ID string = dyteOrgId
output DYTE_API_BASE_URL string = dyteApiBaseUrl
output REALTIMEKIT_ACCOUNT_ID string = realtimekitAccountId
output REALTIMEKIT_APP_ID string = realtimekitAppId
output REALTIMEKIT_API_BASE_URL string = realtimekitApiBaseUrl
output PRESET_HOST string = presetHost
output PRESET_PARTICIPANT string = presetParticipant
output PRESET_GUEST string = presetGuest
output WEBHOOK_PUBLIC_KEY_URL string = webhookPublicKeyUrl
output REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL string = realtimekitWebhookPublicKeyUrl
output AUTH_TENANT_ID string = authTenantId
output AUTH_CLIENT_ID string = apiClientId
output AUTH_REQUIRED_SCOPE string = authRequiredScope
output AUTH_ALLOWED_TENANTS string = authAllowedTenants
output AUTH_SCOPE_URI string = apiScope
output APP_BASE_URL string = effectiveAppBaseUrl
output JOIN_EARLY_MINUTES string = string(joinEarlyMinutes)
output JOIN_GRACE_MINUTES string = string(joinGraceMinutes)
output MAIL_SENDER string = mailSender
output MAIL_TENANT_ID string = (empty(mailSender)) ? '' : ((empty(mailTenantId)) ? tenant().tenantId : mailTenantId)
output MAIL_CLIENT_ID string = mailClientId
output MAIL_CREDENTIAL_TYPE string = mailCredentialType
output MAIL_AUTHORITY_HOST string = mailAuthorityHost
output GRAPH_BASE_URL string = graphBaseUrl
output EVENT_RETENTION_DAYS string = string(eventRetentionDays)
output MEETING_RETENTION_DAYS string = string(meetingRetentionDays)
output RECORDING_RETENTION_DAYS string = string(recordingRetentionDays)
