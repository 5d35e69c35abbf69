// The function app's app settings: every setting shared/settings.py reads that Azure needs, plus
// what the Functions runtime reads. tests/infra/test_settings_drift.py checks this list against
// shared.settings.SETTING_NAMES both ways.
//
// Deployed after rbac.bicep (main.bicep dependsOn), so the identity already holds its roles when
// the app restarts with these settings.
//
// Secrets (shared.settings.SECRET_NAMES) are Key Vault references, never values. A secret that
// belongs to an unconfigured feature (the provider that is not set up, mail when MAIL_SENDER is
// empty) is set to '' rather than to a reference to a secret that does not exist, because an
// unresolved reference stays in the environment as the literal '@Microsoft.KeyVault(...)' string,
// which the app rejects at start-up.
//
// Not set on purpose:
//   AzureWebJobsStorage (a connection string): storage is identity-based (AzureWebJobsStorage__*).
//   AUTH_ISSUER, AUTH_JWKS_URI: overrides for the local token issuer and tests; Entra ID defaults.
//   FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, ...: must not
//   be set on Flex Consumption (functionAppConfig declares the runtime).

@description('Function app name.')
param functionAppName string

@description('Storage account name (identity-based AzureWebJobsStorage).')
param storageAccountName string

@description('The storage account\'s primary blob endpoint (https://<name>.blob.<cloud suffix>/).')
param blobServiceUri string

@description('The storage account\'s primary queue endpoint.')
param queueServiceUri string

@description('The storage account\'s primary table endpoint.')
param tableServiceUri string

@description('Key Vault URI (https://<name>.vault.azure.net/), for the references.')
param keyVaultUri string

@description('Application Insights connection string (holds no secret with local auth off).')
param applicationInsightsConnectionString string

@description('VIDEO_PROVIDER.')
param videoProvider string

@description('DYTE_ORG_ID; non-empty makes DYTE_API_KEY a Key Vault reference.')
param dyteOrgId string

@description('DYTE_API_BASE_URL.')
param dyteApiBaseUrl string

@description('REALTIMEKIT_ACCOUNT_ID; non-empty makes REALTIMEKIT_API_TOKEN a Key Vault reference.')
param realtimekitAccountId string

@description('REALTIMEKIT_APP_ID.')
param realtimekitAppId string

@description('REALTIMEKIT_API_BASE_URL.')
param realtimekitApiBaseUrl string

@description('PRESET_HOST.')
param presetHost string

@description('PRESET_PARTICIPANT.')
param presetParticipant string

@description('PRESET_GUEST.')
param presetGuest string

@description('WEBHOOK_PUBLIC_KEY (PEM).')
param webhookPublicKey string

@description('WEBHOOK_PUBLIC_KEY_URL.')
param webhookPublicKeyUrl string

@description('REALTIMEKIT_WEBHOOK_PUBLIC_KEY (PEM).')
param realtimekitWebhookPublicKey string

@description('REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL.')
param realtimekitWebhookPublicKeyUrl string

@description('AUTH_TENANT_ID.')
param authTenantId string

@description('AUTH_CLIENT_ID.')
param authClientId string

@description('AUTH_REQUIRED_SCOPE.')
param authRequiredScope string

@description('AUTH_ALLOWED_TENANTS.')
param authAllowedTenants string

@description('JOIN_EARLY_MINUTES.')
param joinEarlyMinutes int

@description('JOIN_GRACE_MINUTES.')
param joinGraceMinutes int

@description('APP_BASE_URL.')
param appBaseUrl string

@description('MAIL_SENDER; empty turns email off.')
param mailSender string

@description('MAIL_TENANT_ID.')
param mailTenantId string

@description('MAIL_CLIENT_ID.')
param mailClientId string

@allowed([
  'secret'
  'certificate'
])
@description('Which of MAIL_CLIENT_SECRET / MAIL_CLIENT_CERTIFICATE is a Key Vault reference.')
param mailCredentialType string

@description('MAIL_AUTHORITY_HOST.')
param mailAuthorityHost string

@description('GRAPH_BASE_URL.')
param graphBaseUrl string

@description('EVENT_RETENTION_DAYS.')
param eventRetentionDays int

@description('MEETING_RETENTION_DAYS.')
param meetingRetentionDays int

@description('RECORDING_RETENTION_DAYS.')
param recordingRetentionDays int

var mailEnabled = (empty(mailSender)) ? false : true

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: This is the 'appsettings' config resource, not 'web'; the app validates Entra ID tokens itself (no Easy Auth), see functionapp.bicep.
  // checkov:skip=CKV_AZURE_63: This is the 'appsettings' config resource; HTTP logs go to Application Insights (requests table), not to App Service file logs.
  // checkov:skip=CKV_AZURE_65: This is the 'appsettings' config resource; errors are in Application Insights, and detailed error pages would leak internals.
  // checkov:skip=CKV_AZURE_66: This is the 'appsettings' config resource; failed requests are traced in Application Insights.
  // checkov:skip=CKV_AZURE_80: This is the 'appsettings' config resource of a Python app; no .NET Framework is used.
  // checkov:skip=CKV_AZURE_88: This is the 'appsettings' config resource; Flex Consumption runs from a blob deployment package and has no Azure Files content share.
  // checkov:skip=CKV_AZURE_222: This is the 'appsettings' config resource; public access is a site property, skipped there with its reason (functionapp.bicep).
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Identity-based storage (system-assigned identity) for the Functions runtime and the app. The
    // service URIs are the account's own primary endpoints, so they carry the cloud's suffix (a
    // sovereign cloud included) rather than one assumed from the account name.
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__blobServiceUri: blobServiceUri
    AzureWebJobsStorage__queueServiceUri: queueServiceUri
    AzureWebJobsStorage__tableServiceUri: tableServiceUri
    // Functions runtime: telemetry.
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'

    // The app (contract section 4).
    TABLE_PREFIX: ''
    VIDEO_PROVIDER: videoProvider
    DYTE_ORG_ID: dyteOrgId
    DYTE_API_KEY: (empty(dyteOrgId)) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/dyte-api-key/)'
    DYTE_API_BASE_URL: dyteApiBaseUrl
    REALTIMEKIT_ACCOUNT_ID: realtimekitAccountId
    REALTIMEKIT_APP_ID: realtimekitAppId
    REALTIMEKIT_API_TOKEN: (empty(realtimekitAccountId)) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/realtimekit-api-token/)'
    REALTIMEKIT_API_BASE_URL: realtimekitApiBaseUrl
    PRESET_HOST: presetHost
    PRESET_PARTICIPANT: presetParticipant
    PRESET_GUEST: presetGuest
    WEBHOOK_PUBLIC_KEY: webhookPublicKey
    WEBHOOK_PUBLIC_KEY_URL: webhookPublicKeyUrl
    REALTIMEKIT_WEBHOOK_PUBLIC_KEY: realtimekitWebhookPublicKey
    REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL: realtimekitWebhookPublicKeyUrl
    AUTH_TENANT_ID: authTenantId
    AUTH_CLIENT_ID: authClientId
    AUTH_REQUIRED_SCOPE: authRequiredScope
    AUTH_ALLOWED_TENANTS: authAllowedTenants
    ID_HASH_KEY: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/id-hash-key/)'
    JOIN_EARLY_MINUTES: string(joinEarlyMinutes)
    JOIN_GRACE_MINUTES: string(joinGraceMinutes)
    APP_BASE_URL: appBaseUrl
    MAIL_SENDER: mailSender
    MAIL_TENANT_ID: (mailEnabled) ? mailTenantId : ''
    MAIL_CLIENT_ID: mailClientId
    MAIL_CLIENT_SECRET: (mailEnabled && mailCredentialType == 'secret') ? '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/mail-client-secret/)' : ''
    MAIL_CLIENT_CERTIFICATE: (mailEnabled && mailCredentialType == 'certificate') ? '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/mail-client-certificate/)' : ''
    MAIL_AUTHORITY_HOST: mailAuthorityHost
    GRAPH_BASE_URL: graphBaseUrl
    EVENT_RETENTION_DAYS: string(eventRetentionDays)
    MEETING_RETENTION_DAYS: string(meetingRetentionDays)
    RECORDING_RETENTION_DAYS: string(recordingRetentionDays)
  }
}
