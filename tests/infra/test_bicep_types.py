"""Every Bicep file in infra/ against Bicep's own type index (tests/infra/bicep_types.py), and the
checker itself proven on planted mistakes: small files with one mistake each, whose message and line
must come out exactly."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.infra import INFRA, REPO_ROOT, bicep_files
from tests.infra.bicep_types import TYPES_DIR, check, default_index


def test_every_bicep_file_matches_the_type_index():
    findings = [finding.render(REPO_ROOT) for finding in check(bicep_files())]
    assert not findings, "\n".join(findings)


def test_the_index_is_the_vendored_copy_with_its_licence_and_sources():
    sources = (TYPES_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for path in TYPES_DIR.glob("*.json"):
        assert f"| {path.name} |" in sources, f"{path.name} is not listed in SOURCES.md"
        json.loads(path.read_text(encoding="utf-8"))
    for licence in ("LICENSE-bicep-types-az", "LICENSE-msgraph-bicep-types"):
        assert "MIT License" in (TYPES_DIR / licence).read_text(encoding="utf-8")


def test_every_resource_type_the_project_declares_is_in_the_index():
    # A guard against a checker that silently skips: the index must know what infra/ uses.
    text = "\n".join(path.read_text(encoding="utf-8") for path in bicep_files())
    for needed in (
        "Microsoft.Storage/storageAccounts@2023-05-01",
        "Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01",
        "Microsoft.Web/sites@2024-04-01",
        "Microsoft.Web/staticSites@2024-04-01",
        "Microsoft.Graph/applications@v1.0",
        "Microsoft.Insights/scheduledQueryRules@2023-12-01",
        "Microsoft.Authorization/roleAssignments@2022-04-01",
    ):
        assert needed in text, needed
        assert default_index().body(*needed.split("@")) is not None, needed


# --- Planted mistakes ------------------------------------------------------------------------------

ACCOUNT = """\
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stplanted'
  location: 'westeurope'
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    PROPERTY
  }
}
"""


def _account(line: str) -> str:
    return ACCOUNT.replace("PROPERTY", line)


PLANTED = {
    "unknown api version": (
        ACCOUNT.replace("2023-05-01", "2099-01-01").replace("PROPERTY", "accessTier: 'Hot'"),
        1,
        "account (Microsoft.Storage/storageAccounts@2099-01-01): not in Bicep's type index "
        "(api versions in the index: 2023-05-01)",
    ),
    "unknown resource type": (
        "resource thing 'Microsoft.Storage/storageThings@2023-05-01' = {\n  name: 'x'\n}\n",
        1,
        "thing (Microsoft.Storage/storageThings@2023-05-01): not in Bicep's type index "
        "(no such resource type in the index)",
    ),
    "unknown property": (
        _account("allowSharedKeyAcess: false"),
        9,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.allowSharedKeyAcess: unknown property "
        "of object (StorageAccountPropertiesCreateParametersOrStorageAccountProperties) "
        "(did you mean 'allowSharedKeyAccess'?)",
    ),
    "read-only property": (
        _account("provisioningState: 'Succeeded'"),
        9,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.provisioningState: "
        "read-only property (the service sets it)",
    ),
    "wrong literal type": (
        _account("allowSharedKeyAccess: 'false'"),
        9,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.allowSharedKeyAccess: "
        "expected bool, got string 'false'",
    ),
    "enum value": (
        _account("accessTier: 'Warm'"),
        9,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.accessTier: "
        "'Warm' is not one of 'Cold', 'Cool', 'Hot', 'Premium'",
    ),
    "enum value in one branch of a condition": (
        "param cold bool\n" + _account("accessTier: (cold) ? 'Cool' : 'Warm'"),
        10,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.accessTier: "
        "'Warm' is not one of 'Cold', 'Cool', 'Hot', 'Premium'",
    ),
    "parameter whose @allowed value the property refuses": (
        "@allowed([\n  'Hot'\n  'Warm'\n])\nparam tier string\n" + _account("accessTier: tier"),
        14,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.accessTier: "
        "parameter tier allows 'Warm': 'Warm' is not one of 'Cold', 'Cool', 'Hot', 'Premium'",
    ),
    "parameter of the wrong type": (
        "param https string\n" + _account("supportsHttpsTrafficOnly: https"),
        10,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.supportsHttpsTrafficOnly: "
        "expected bool, got parameter https (string)",
    ),
    "variable holding a wrong literal": (
        "var days = '7'\n"
        + _account("isHnsEnabled: false")
        + "resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {\n"
        "  parent: account\n  name: 'default'\n  properties: {\n    deleteRetentionPolicy: {\n"
        "      enabled: true\n      days: days\n    }\n  }\n}\n",
        19,
        "blobs (Microsoft.Storage/storageAccounts/blobServices@2023-05-01).properties.deleteRetentionPolicy.days: "
        "expected int, got string '7' (variable days, line 1)",
    ),
    "number out of range": (
        _account("isHnsEnabled: false")
        + "resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {\n"
        "  parent: account\n  name: 'default'\n  properties: {\n    deleteRetentionPolicy: {\n"
        "      enabled: true\n      days: 400\n    }\n  }\n}\n",
        18,
        "blobs (Microsoft.Storage/storageAccounts/blobServices@2023-05-01).properties.deleteRetentionPolicy.days: "
        "400 is above the maximum 365",
    ),
    "missing required property": (
        _account("accessTier: 'Hot'").replace("  kind: 'StorageV2'\n", ""),
        1,
        "account (Microsoft.Storage/storageAccounts@2023-05-01): missing required property 'kind'",
    ),
    "mistake in a nested child resource": (
        _account("accessTier: 'Hot'").rstrip()[:-1] + "  resource blobs 'blobServices' = {\n    name: 'default'\n"
        "    resource recordings 'containers' = {\n      name: 'recordings'\n      properties: {\n"
        "        publicAccess: 'Private'\n      }\n    }\n  }\n}\n",
        16,
        "recordings (Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01).properties.publicAccess: "
        "'Private' is not one of 'Blob', 'Container', 'None'",
    ),
    "mistake in a loop": (
        "resource many 'Microsoft.Storage/storageAccounts@2023-05-01' = [for i in range(0, 2): {\n"
        "  name: 'st${i}x'\n  location: 'westeurope'\n  kind: 'StorageV2'\n  sku: {\n    name: 'Standard_LRS'\n  }\n"
        "  properties: {\n    accessTier: 'Warm'\n  }\n}]\n",
        9,
        "many (Microsoft.Storage/storageAccounts@2023-05-01).properties.accessTier: "
        "'Warm' is not one of 'Cold', 'Cool', 'Hot', 'Premium'",
    ),
    "mistake in a conditional resource": (
        "param on bool\n" + _account("accessTier: 'Hot'").replace("= {", "= if (on) {", 1).replace("'Hot'", "1"),
        10,
        "account (Microsoft.Storage/storageAccounts@2023-05-01).properties.accessTier: "
        "expected 'Cold' | 'Cool' | 'Hot' | 'Premium', got int 1",
    ),
    "properties on an existing resource": (
        "resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n"
        "  name: 'stplanted'\n  properties: {}\n}\n",
        3,
        "account (Microsoft.Storage/storageAccounts@2023-05-01): 'properties' cannot be set on an existing "
        "resource (only name, parent, scope)",
    ),
    "app setting that is not a string": (
        "resource site 'Microsoft.Web/sites@2024-04-01' existing = {\n  name: 'func-planted'\n}\n"
        "resource settings 'Microsoft.Web/sites/config@2024-04-01' = {\n  parent: site\n  name: 'appsettings'\n"
        "  properties: {\n    RECORDING_RETENTION_DAYS: 365\n  }\n}\n",
        8,
        "settings (Microsoft.Web/sites/config@2024-04-01).properties.RECORDING_RETENTION_DAYS: "
        "expected string, got int 365",
    ),
    "Microsoft Graph: read-only property": (
        "extension microsoftGraphV1\nresource app 'Microsoft.Graph/applications@v1.0' = {\n"
        "  uniqueName: 'meetings'\n  displayName: 'Meetings'\n  appId: '00000000-0000-0000-0000-000000000000'\n}\n",
        5,
        "app (Microsoft.Graph/applications@v1.0).appId: read-only property (the service sets it)",
    ),
    "Microsoft Graph: misspelt SPA redirect URIs": (
        "extension microsoftGraphV1\nresource app 'Microsoft.Graph/applications@v1.0' = {\n"
        "  uniqueName: 'meetings'\n  displayName: 'Meetings'\n  spa: {\n    redirectUri: [\n"
        "      'http://localhost:5173'\n    ]\n  }\n}\n",
        6,
        "app (Microsoft.Graph/applications@v1.0).spa.redirectUri: unknown property of object "
        "(MicrosoftGraphSpaApplication) (did you mean 'redirectUris'?)",
    ),
    "read of a property the resource does not have": (
        _account("accessTier: 'Hot'") + "output blob string = account.properties.primaryEndpoints.blobs\n",
        12,
        "account.properties.primaryEndpoints: object (Endpoints) has no property 'blobs'",
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_planted_mistake_is_reported_with_its_line(case: str, tmp_path: Path):
    source, line, message = PLANTED[case]
    path = tmp_path / "planted.bicep"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    assert [finding.render(tmp_path) for finding in check([path])] == [f"planted.bicep:{line}: {message}"]


MODULE = """\
@description('Name.')
param name string

@allowed([
  'Hot'
  'Cool'
])
@description('Tier.')
param tier string = 'Hot'

output id string = name
"""

MODULE_CASES = {
    "unknown module parameter": (
        "module m 'mod.bicep' = {\n  name: 'm'\n  params: {\n    name: 'x'\n    tear: 'Hot'\n  }\n}\n",
        5,
        "module m: mod.bicep has no parameter 'tear' (did you mean 'tier'?)",
    ),
    "missing module parameter": (
        "module m 'mod.bicep' = {\n  name: 'm'\n  params: {\n    tier: 'Cool'\n  }\n}\n",
        3,
        "module m: missing required parameter 'name'",
    ),
    "module argument outside @allowed": (
        "module m 'mod.bicep' = {\n  name: 'm'\n  params: {\n    name: 'x'\n    tier: 'Warm'\n  }\n}\n",
        5,
        "module m: parameter tier: 'Warm' is not one of ['Hot', 'Cool'] (@allowed)",
    ),
    "output the module does not declare": (
        "module m 'mod.bicep' = {\n  name: 'm'\n  params: {\n    name: 'x'\n  }\n}\noutput o string = m.outputs.ids\n",
        7,
        "module m (mod.bicep) has no output 'ids'",
    ),
    "BCP318: output of a conditional module without .?": (
        "param on bool\nmodule m 'mod.bicep' = if (on) {\n  name: 'm'\n  params: {\n    name: 'x'\n  }\n}\n"
        "output o string = (on) ? m.outputs.id : ''\n",
        8,
        "BCP318: m is conditional (null when its condition is false): read it as m.?outputs",
    ),
}


@pytest.mark.parametrize("case", sorted(MODULE_CASES))
def test_planted_module_mistake_is_reported_with_its_line(case: str, tmp_path: Path):
    source, line, message = MODULE_CASES[case]
    (tmp_path / "mod.bicep").write_text(MODULE, encoding="utf-8")
    path = tmp_path / "main.bicep"
    path.write_text(source, encoding="utf-8")
    assert [finding.render(tmp_path) for finding in check([path])] == [f"main.bicep:{line}: {message}"]


def test_safe_dereference_and_unknown_values_pass(tmp_path: Path):
    # The same module read with `.?`, and values known only at deployment: nothing to report.
    (tmp_path / "mod.bicep").write_text(MODULE, encoding="utf-8")
    path = tmp_path / "main.bicep"
    path.write_text(
        "param on bool\nparam tier string\nmodule m 'mod.bicep' = if (on) {\n  name: 'm'\n  params: {\n"
        "    name: 'x'\n    tier: tier\n  }\n}\noutput o string = m.?outputs.id ?? ''\n"
        + _account("accessTier: tier\n    allowSharedKeyAccess: contains(tier, 'x')"),
        encoding="utf-8",
    )
    assert [finding.render(tmp_path) for finding in check([path])] == []


def test_infra_is_where_the_checker_looks():
    assert INFRA / "main.bicep" in bicep_files()
