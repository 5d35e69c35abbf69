// Key Vault (RBAC authorization) holding the app's secrets. The app reads them through Key Vault
// references in its app settings (appsettings.bicep) with its system-assigned identity
// (Key Vault Secrets User, granted in rbac.bicep).
//
// A secret is written only when this deployment is given a value for it: Key Vault rejects an
// empty secret, and leaving a parameter empty keeps whatever the vault already holds (so a key
// rotated with `az keyvault secret set` is not overwritten by the next deployment).

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags object

@minLength(3)
@maxLength(24)
@description('Key Vault name.')
param keyVaultName string

@secure()
@description('DYTE_API_KEY value; empty keeps the secret in the vault.')
param dyteApiKey string = ''

@secure()
@description('REALTIMEKIT_API_TOKEN value; empty keeps the secret in the vault.')
param realtimekitApiToken string = ''

@description('Write idHashKey as the secret id-hash-key (first deployment only; see main.bicep).')
param writeIdHashKey bool = false

@secure()
@description('ID_HASH_KEY value, used when writeIdHashKey is true.')
param idHashKey string = ''

@allowed([
  'secret'
  'certificate'
])
@description('Which mail credential mailClientCredential is: secret or certificate.')
param mailCredentialType string = 'secret'

@secure()
@description('Mail credential value; empty keeps the secret in the vault.')
param mailClientCredential string = ''

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: No virtual network: Key Vault references from the Flex app and the post-provision hook on a developer machine reach the vault over its public endpoint; every data-plane call still needs an Entra ID role (RBAC authorization).
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: public network access stays enabled; access is RBAC only, with purge protection on.
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

module dyteApiKeySecret 'keyvault-secret.bicep' = if (!empty(dyteApiKey)) {
  name: 'secret-dyte-api-key'
  params: {
    keyVaultName: keyVault.name
    secretName: 'dyte-api-key'
    secretValue: dyteApiKey
  }
}

module realtimekitApiTokenSecret 'keyvault-secret.bicep' = if (!empty(realtimekitApiToken)) {
  name: 'secret-realtimekit-api-token'
  params: {
    keyVaultName: keyVault.name
    secretName: 'realtimekit-api-token'
    secretValue: realtimekitApiToken
  }
}

module idHashKeySecret 'keyvault-secret.bicep' = if (writeIdHashKey) {
  name: 'secret-id-hash-key'
  params: {
    keyVaultName: keyVault.name
    secretName: 'id-hash-key'
    secretValue: idHashKey
  }
}

module mailCredentialSecret 'keyvault-secret.bicep' = if (!empty(mailClientCredential)) {
  name: 'secret-mail-credential'
  params: {
    keyVaultName: keyVault.name
    secretName: (mailCredentialType == 'certificate') ? 'mail-client-certificate' : 'mail-client-secret'
    secretValue: mailClientCredential
    contentType: (mailCredentialType == 'certificate') ? 'application/x-pem-file' : 'text/plain'
  }
}

output id string = keyVault.id
output name string = keyVault.name
output uri string = keyVault.properties.vaultUri
