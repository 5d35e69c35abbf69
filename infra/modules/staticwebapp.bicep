// The SPA (web/: a Vite build whose output is web/dist) on Azure Static Web Apps, Free plan. azd
// deploys web/dist to it (azure.yaml service `web`, found by the tag azd-service-name: web) after its
// predeploy hook has written /config.json from this deployment's outputs
// (infra/scripts/write_spa_config.py). The Free plan serves static files only: no API, no auth of
// its own; the SPA signs in with MSAL and calls the function app directly (CORS allows this origin).

@allowed([
  'westus2'
  'centralus'
  'eastus2'
  'westeurope'
  'eastasia'
])
@description('Region of the Static Web App resource (the content itself is served from a global network). Static Web Apps exist only in these regions.')
param location string

@description('Tags for every resource.')
param tags object

@description('Static Web App name.')
param name string

resource staticWebApp 'Microsoft.Web/staticSites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'web' })
  sku: {
    name: 'Free'
    tier: 'Free'
  }
  properties: {
    // azd deploys to the production environment; no pull-request preview environments.
    stagingEnvironmentPolicy: 'Disabled'
    allowConfigFileUpdates: true
  }
}

output name string = staticWebApp.name
output defaultHostname string = staticWebApp.properties.defaultHostname
@description('The SPA\'s origin: https://<default host name>, without a trailing slash (as window.location.origin).')
output origin string = 'https://${staticWebApp.properties.defaultHostname}'
