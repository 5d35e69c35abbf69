// The storage account used by the Functions runtime (AzureWebJobsStorage: host state, queue
// triggers), by the app's own tables and queues, for the Flex Consumption deployment package, and
// for stored meeting recordings (the private container `recordings`, read by users only through
// short-lived user-delegation SAS links the app signs). Keyless: shared key access is off, so
// everything authenticates with Entra ID tokens.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@minLength(3)
@maxLength(24)
@description('Storage account name (3-24 lowercase letters and digits).')
param storageAccountName string

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Private blob container for the recordings the app copies from the provider.')
param recordingsContainerName string = 'recordings'

@minValue(1)
@maxValue(3650)
@description('RECORDING_RETENTION_DAYS: the app deletes a stored recording after this many days (or with its meeting).')
param recordingRetentionDays int = 365

@minValue(1)
@maxValue(365)
@description('Days after RECORDING_RETENTION_DAYS at which the lifecycle policy deletes a recording blob the app has not deleted (a backstop, never the first line).')
param recordingRetentionMarginDays int = 7

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
@description('Storage redundancy.')
param skuName string = 'Standard_LRS'

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: No virtual network: the Flex app (without VNet integration) and developers reach storage over its public endpoint; access is Entra ID RBAC only (shared key off).
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: public network access stays enabled; shared key and anonymous blob access are off.
  // checkov:skip=CKV_AZURE_43: The name is built from the resourceToken (an interpolation), which this rule cannot evaluate; @minLength/@maxLength and 'st' + uniqueString keep it valid.
  // checkov:skip=CKV_AZURE_206: Replication is the skuName parameter (main.bicep storageSkuName): Standard_LRS by default for cost and because ZRS/GZRS are not offered in every Flex region; choose Standard_GZRS or Standard_ZRS for production where available.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    isLocalUserEnabled: false
    isSftpEnabled: false
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storageAccount
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource recordingsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: recordingsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Backstop for the app's own retention: a recording blob older than RECORDING_RETENTION_DAYS plus a
// margin is deleted even if the app's purge never ran. Blob age counts from the copy, which is never
// earlier than the recording, so the policy never deletes a recording the app still keeps.
resource lifecyclePolicy 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storageAccount
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'recordings-retention-backstop'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${recordingsContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: recordingRetentionDays + recordingRetentionMarginDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

output id string = storageAccount.id
output name string = storageAccount.name
// The cloud's own endpoints (https://<name>.blob.core.windows.net/ in the public cloud, other
// suffixes in sovereign clouds), each with a trailing slash.
output blobEndpoint string = storageAccount.properties.primaryEndpoints.blob
output queueEndpoint string = storageAccount.properties.primaryEndpoints.queue
output tableEndpoint string = storageAccount.properties.primaryEndpoints.table
output recordingsContainerName string = recordingsContainer.name
output deploymentContainerName string = deploymentContainer.name
