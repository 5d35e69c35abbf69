// One Key Vault secret. keyvault.bicep calls this module only when it has a value to write (Key
// Vault rejects empty secrets; an empty parameter means "keep what the vault holds").

@description('Name of the existing Key Vault.')
param keyVaultName string

@description('Secret name.')
param secretName string

@secure()
@description('Secret value (never empty).')
param secretValue string

@description('Content type recorded with the secret.')
param contentType string = 'text/plain'

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: These secrets (provider credentials, ID_HASH_KEY, the mail credential) must not expire on a date fixed at deployment: an expired secret stops its Key Vault reference from resolving (an outage), and a new ID_HASH_KEY changes every public user id. Rotation is a deliberate step (docs/deploy.md).
  parent: keyVault
  name: secretName
  properties: {
    value: secretValue
    contentType: contentType
    attributes: {
      enabled: true
    }
  }
}

output name string = secret.name
