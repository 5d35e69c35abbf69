// The Entra ID app registration for the API and its SPA, with the Microsoft Graph Bicep extension
// (alias in infra/bicepconfig.json). Deployed only when main.bicep's deployAppRegistration is true;
// the deployer needs Application.ReadWrite.All (or Application.ReadWrite.OwnedBy).
//
// One registration serves both: the SPA signs users in with it (spa.redirectUris) and requests the
// delegated scope access_as_user of it, so v2 access tokens carry aud = this app's client ID
// (AUTH_CLIENT_ID) and scp = access_as_user. Optional claims email and xms_edov let the app match
// invites on a verified email (contract section 2: email only when xms_edov is true).
//
// checkov's bundled pycep-parser (0.5.1) cannot read the `extension` keyword; this file is covered
// by tests/infra/test_bicep.py (pycep-parser 0.7) instead.

extension microsoftGraphV1

@description('Unique name of the application (the idempotency key of Microsoft.Graph/applications).')
param uniqueName string

@description('Display name shown in Entra ID.')
param displayName string

@allowed([
  'AzureADMyOrg'
  'AzureADMultipleOrgs'
])
@description('Sign-in audience.')
param signInAudience string = 'AzureADMyOrg'

@description('SPA redirect URIs (the SPA origins and callback paths).')
param spaRedirectUris array

@description('Name of the delegated scope (AUTH_REQUIRED_SCOPE).')
param scopeName string = 'access_as_user'

// Stable across deployments: a scope's id must not change once published.
var scopeId = guid(uniqueName, 'scope', scopeName)

// api://<tenant id>/<uniqueName>: known before the app exists (api://<appId> is not, in a single
// resource) and accepted by the default app ID URI policy (tenant-ID form).
var identifierUri = 'api://${tenant().tenantId}/${uniqueName}'

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: signInAudience
  identifierUris: [
    identifierUri
  ]
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: scopeId
        value: scopeName
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Use the meetings API'
        adminConsentDescription: 'Lets the meetings SPA call the meetings API as the signed-in user.'
        userConsentDisplayName: 'Use meetings'
        userConsentDescription: 'Lets the meetings app create, join and manage your meetings as you.'
      }
    ]
  }
  optionalClaims: {
    accessToken: [
      {
        name: 'email'
        essential: false
      }
      {
        name: 'xms_edov'
        essential: false
      }
    ]
  }
  spa: {
    redirectUris: spaRedirectUris
  }
}

// Tokens are only issued for an application that has a service principal in the tenant.
resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
}

@description('Client ID of the registration: AUTH_CLIENT_ID, the token audience.')
output clientId string = application.appId

@description('Full scope the SPA requests, e.g. api://<tenant>/<uniqueName>/access_as_user.')
output scopeUri string = '${identifierUri}/${scopeName}'

output servicePrincipalId string = servicePrincipal.id
