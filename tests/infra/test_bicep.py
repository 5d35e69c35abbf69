"""Assertions on the parsed Bicep templates (pycep-parser 0.7+): structure, security settings,
role assignments, alerts, the app registration, and the azd wiring.

The Bicep CLI cannot run here, so these tests are the compile-time safety net: each one pins a
property that a careless edit could flip (shared key access, TLS, a role assignment, ...).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from pathlib import Path

import pytest

from tests.infra import (
    INFRA,
    MODULES,
    REPO_ROOT,
    app_settings,
    bicep_files,
    body,
    condition,
    conditional,
    decorator,
    dotted,
    function_call,
    main,
    module,
    only_resource,
    parse,
    resources_of_type,
    strings,
    walk,
)

ROLE = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Delegator": "db58b8e5-c6ad-4a2a-8342-4190687cbf4a",
}


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


# --- Every file parses ---------------------------------------------------------------------------


def test_pycep_is_new_enough():
    # 0.5/0.6 cannot read the Graph extension file; 0.7 is what the precedence note below is about.
    assert _version_tuple(importlib.metadata.version("pycep-parser")) >= (0, 7, 0)


def test_the_expected_bicep_files_exist():
    names = {path.relative_to(INFRA).as_posix() for path in bicep_files()}
    assert {
        "main.bicep",
        "modules/monitoring.bicep",
        "modules/storage.bicep",
        "modules/keyvault.bicep",
        "modules/keyvault-secret.bicep",
        "modules/functionapp.bicep",
        "modules/rbac.bicep",
        "modules/appsettings.bicep",
        "modules/alerts.bicep",
        "modules/appregistration.bicep",
        "modules/staticwebapp.bicep",
    } <= names


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses(path: Path):
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name}: nothing declared"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_no_negated_condition_misparsed_as_negated_ternary(path: Path):
    # pycep 0.7.1 reads `!x ? a : b` as `!(x ? a : b)`; the Bicep compiler reads `(!x) ? a : b`.
    # Either way the source is ambiguous to a reader: parenthesize the negated condition.
    for node in walk(parse(path)):
        if isinstance(node, dict) and isinstance(node.get("operator"), dict) and node["operator"].get("type") == "not":
            operand = node["operator"]["operands"].get("bool_value")
            assert conditional(operand) is None, f"{path.name}: write `(!x) ? a : b`, not `!x ? a : b`"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_modules_are_local_files_not_registry_modules(path: Path):
    for name, entry in parse(path).get("modules", {}).items():
        assert entry["type"] == "local", f"{path.name}: module {name} is not a local file (no AVM / registry modules)"
        target = (path.parent / entry["detail"]["path"]).resolve()
        assert target.is_file(), f"{path.name}: module {name} points at missing {target}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_parameter_has_a_description(path: Path):
    for name, parameter in parse(path).get("parameters", {}).items():
        described = decorator(parameter, "description")
        assert described and described.get("argument"), f"{path.name}: param {name} has no @description"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_secure_parameters_have_no_hardcoded_default(path: Path):
    # Stands in for checkov's CKV_AZURE_131 (skipped on idHashKey, whose default is newGuid()).
    for name, parameter in parse(path).get("parameters", {}).items():
        default = parameter.get("default")
        if decorator(parameter, "secure") is None or default is None:
            continue
        assert default == "" or "newGuid()" in json.dumps(default), (
            f"{path.name}: @secure param {name} has a hardcoded default"
        )


def test_names_come_from_a_resource_token():
    token = main()["variables"]["resourceToken"]["value"]
    assert function_call(token, "to_lower") is not None
    assert any(function_call(node, "unique_string") is not None for node in walk(token))
    name_params = {
        "monitoring": ("logAnalyticsName", "applicationInsightsName"),
        "storage": ("storageAccountName",),
        "keyVault": ("keyVaultName",),
        "functionApp": ("planName",),
    }
    modules = main()["modules"]
    for module_name, params in name_params.items():
        for param in params:
            assert "${resourceToken}" in body(modules[module_name])["params"][param], (module_name, param)
    assert "${resourceToken}" in main()["variables"]["functionAppName"]["value"]


# --- Storage -----------------------------------------------------------------------------------


def test_storage_account_is_keyless_and_private():
    account = body(only_resource(module("storage"), "Microsoft.Storage/storageAccounts"))
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["allowCrossTenantReplication"] is False
    assert properties["isLocalUserEnabled"] is False
    assert account["kind"] == "StorageV2"


def _containers() -> dict[str, dict]:
    found = resources_of_type(module("storage"), "Microsoft.Storage/storageAccounts/blobServices/containers")
    return {name: body(entry) for name, entry in found.items()}


def test_storage_has_the_deployment_container_the_app_deploys_from():
    container = _containers()["deploymentContainer"]
    assert container["properties"]["publicAccess"] == "None"
    assert container["name"] == "deploymentContainerName"
    modules = main()["modules"]
    assert body(modules["storage"])["params"]["deploymentContainerName"] == "deploymentContainerName"
    url = body(modules["functionApp"])["params"]["deploymentBlobContainerUrl"]
    assert url == "${storage.outputs.blobEndpoint}${deploymentContainerName}"


def test_recordings_live_in_a_private_container_with_a_lifecycle_backstop():
    container = _containers()["recordingsContainer"]
    assert container["properties"]["publicAccess"] == "None"
    assert module("storage")["parameters"]["recordingsContainerName"]["default"] == "recordings"
    policy = body(only_resource(module("storage"), "Microsoft.Storage/storageAccounts/managementPolicies"))
    assert policy["name"] == "default"
    (rule,) = policy["properties"]["policy"]["rules"]
    assert rule["enabled"] is True and rule["type"] == "Lifecycle"
    assert rule["definition"]["filters"] == {"blobTypes": ["blockBlob"], "prefixMatch": ["${recordingsContainerName}/"]}
    days = rule["definition"]["actions"]["baseBlob"]["delete"]["daysAfterCreationGreaterThan"]
    # RECORDING_RETENTION_DAYS plus the margin, both from main.bicep (the same value the app gets).
    assert {"recordingRetentionDays", "recordingRetentionMarginDays"} <= set(strings(days))
    params = body(main()["modules"]["storage"])["params"]
    assert params["recordingRetentionDays"] == "recordingRetentionDays"
    assert body(main()["modules"]["appSettings"])["params"]["recordingRetentionDays"] == "recordingRetentionDays"
    assert main()["parameters"]["recordingRetentionDays"]["default"] == 365


# --- Plan and function app ------------------------------------------------------------------------


def _site() -> dict:
    return body(only_resource(module("functionapp"), "Microsoft.Web/sites"))


def test_plan_is_flex_consumption_on_linux():
    plan = body(only_resource(module("functionapp"), "Microsoft.Web/serverfarms"))
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True


def test_function_app_is_hardened():
    site = _site()
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "SystemAssigned"}
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    config = properties["siteConfig"]
    assert config["minTlsVersion"] == "1.2"
    assert config["scmMinTlsVersion"] == "1.2"
    assert config["http20Enabled"] is True


def test_function_app_runs_python_311_from_a_blob_package_read_with_its_identity():
    function_app_config = _site()["properties"]["functionAppConfig"]
    assert function_app_config["runtime"] == {"name": "python", "version": "3.11"}
    storage = function_app_config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "SystemAssignedIdentity"}


def test_scale_settings_are_parameters_with_one_always_ready_http_instance_by_default():
    scale = _site()["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["alwaysReady"] == [{"name": "http", "instanceCount": "alwaysReadyHttpInstances"}]
    parameters = main()["parameters"]
    assert parameters["alwaysReadyHttpInstances"]["default"] == 1
    assert "maximumInstanceCount" in parameters
    params = body(main()["modules"]["functionApp"])["params"]
    assert params["alwaysReadyHttpInstances"] == "alwaysReadyHttpInstances"
    assert params["maximumInstanceCount"] == "maximumInstanceCount"


def test_cors_is_limited_to_the_spa_origins():
    cors = _site()["properties"]["siteConfig"]["cors"]
    assert cors["supportCredentials"] is False
    assert cors["allowedOrigins"] == "corsAllowedOrigins"
    assert body(main()["modules"]["functionApp"])["params"]["corsAllowedOrigins"] == "corsOrigins"
    variables = main()["variables"]
    # The Static Web App's origin, plus the configured extra origins; never "*".
    assert strings(variables["corsOrigins"]["value"]) == ["spaOrigin", "extraCorsOrigins"]
    assert dotted(variables["spaOrigin"]["value"]) == "staticWebApp.outputs.origin"
    assert {"spaOrigins", "appBaseUrl"} <= set(strings(variables["extraCorsOrigins"]["value"]))
    for name in ("corsOrigins", "extraCorsOrigins", "spaOrigin"):
        assert "*" not in strings(variables[name]["value"])


def test_health_check_points_at_the_health_endpoint():
    assert "healthCheckPath" in strings(_site()["properties"]["siteConfig"]["healthCheckPath"])
    assert main()["parameters"]["healthCheckPath"]["default"] == "/api/health"


def test_site_config_has_no_property_that_flex_consumption_rejects():
    # ARM answers 51021 "site configuration property ... for Flex Consumption sites is invalid".
    rejected = {
        "ftpsState",
        "alwaysOn",
        "linuxFxVersion",
        "windowsFxVersion",
        "netFrameworkVersion",
        "use32BitWorkerProcess",
        "functionAppScaleLimit",
        "preWarmedInstanceCount",
        "functionsRuntimeScaleMonitoringEnabled",
        "javaVersion",
        "powerShellVersion",
    }
    assert not rejected & set(_site()["properties"]["siteConfig"])


def test_ftp_and_scm_basic_auth_are_off():
    policies = resources_of_type(module("functionapp"), "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    by_name = {body(entry)["name"]: body(entry)["properties"]["allow"] for entry in policies.values()}
    assert by_name == {"ftp": False, "scm": False}


def test_app_settings_are_applied_after_the_role_assignments():
    assert "rbac" in body(main()["modules"]["appSettings"]).get("dependsOn", [])
    assert "appSettings" not in _site()["properties"]["siteConfig"]


# --- Key Vault -----------------------------------------------------------------------------------


def test_key_vault_uses_rbac_and_cannot_be_purged():
    properties = body(only_resource(module("keyvault"), "Microsoft.KeyVault/vaults"))["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert "accessPolicies" not in properties


def _secret_modules() -> dict[str, dict]:
    return {
        name: entry
        for name, entry in module("keyvault").get("modules", {}).items()
        if entry["detail"]["path"] == "keyvault-secret.bicep"
    }


def test_every_secret_is_written_only_when_there_is_a_value():
    # Key Vault rejects empty secrets, and an empty parameter must keep the vault's value.
    secret_modules = _secret_modules()
    assert len(secret_modules) == 4
    for name, entry in secret_modules.items():
        assert condition(entry) is not None, f"secret module {name} is unconditional"
    assert strings(condition(secret_modules["idHashKeySecret"])) == ["writeIdHashKey"]


def test_id_hash_key_is_generated_and_written_once():
    parameters = main()["parameters"]
    assert decorator(parameters["idHashKey"], "secure") is not None
    assert "newGuid()" in parameters["idHashKey"]["default"]
    # Safe default for a manual deployment: never replace an existing key unless asked.
    assert parameters["writeIdHashKey"]["default"] is False
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert azd["writeIdHashKey"]["value"] == "${WRITE_ID_HASH_KEY=true}"
    hook = (INFRA / "scripts" / "postprovision.sh").read_text()
    assert "azd env set WRITE_ID_HASH_KEY false" in hook


def _possible_values(node) -> set:
    """The values an expression can take: both branches of a conditional, or the literal."""
    branches = conditional(node)
    if branches is not None:
        return _possible_values(branches["true_value"]) | _possible_values(branches["false_value"])
    return {node} if isinstance(node, str) else set()


def test_secret_names_match_the_key_vault_references():
    written = set()
    for entry in _secret_modules().values():
        written |= _possible_values(body(entry)["params"]["secretName"])
    referenced = set()
    for value in app_settings().values():
        referenced.update(re.findall(r"secrets/([a-z-]+)/", " ".join(strings(value))))
    assert (
        referenced
        == written
        == {"dyte-api-key", "realtimekit-api-token", "id-hash-key", "mail-client-secret", "mail-client-certificate"}
    )


def test_secrets_are_never_outputs():
    for path in bicep_files():
        for name, output in parse(path).get("outputs", {}).items():
            assert decorator(output, "secure") is None
            for text in strings(output.get("value")):
                assert "idHashKey" not in text and "ApiKey" not in text and "ApiToken" not in text, (path.name, name)


# --- Monitoring ----------------------------------------------------------------------------------


def test_application_insights_is_workspace_based_with_local_auth_off():
    parsed = module("monitoring")
    insights = body(only_resource(parsed, "Microsoft.Insights/components"))["properties"]
    assert insights["DisableLocalAuth"] is True
    assert insights["WorkspaceResourceId"] == {
        "operator": {"type": "property_accessor", "operands": {"operand_1": "logAnalytics", "operand_2": "id"}}
    }
    workspace = body(only_resource(parsed, "Microsoft.OperationalInsights/workspaces"))["properties"]
    assert workspace["features"]["disableLocalAuth"] is True


# --- Role assignments ----------------------------------------------------------------------------


def _assignments() -> list[dict]:
    rbac = module("rbac")
    existing = {name: entry["type"] for name, entry in rbac["resources"].items() if entry.get("existing")}
    found = []
    for name, entry in resources_of_type(rbac, "Microsoft.Authorization/roleAssignments").items():
        config = body(entry)
        role = function_call(config["properties"]["roleDefinitionId"], "subscription_resource_id")
        assert role and role["resource_type"] == "Microsoft.Authorization/roleDefinitions", name
        guid_args = function_call(config["name"], "guid")
        assert guid_args, f"{name}: the assignment name must be a guid(...)"
        found.append(
            {
                "name": name,
                "scope": existing[config["scope"]],
                "role": role["resource_name_1"],
                "principal": config["properties"]["principalId"],
                "principalType": config["properties"]["principalType"],
                "conditional": condition(entry) is not None,
                "guid_strings": strings(guid_args),
            }
        )
    return found


def test_the_app_identity_has_exactly_the_roles_it_needs():
    app = {(a["scope"], a["role"]) for a in _assignments() if a["principal"] == "appPrincipalId"}
    assert app == {
        ("Microsoft.Storage/storageAccounts", ROLE["Storage Blob Data Owner"]),  # deployment package + host
        ("Microsoft.Storage/storageAccounts", ROLE["Storage Queue Data Contributor"]),  # queue triggers
        ("Microsoft.Storage/storageAccounts", ROLE["Storage Table Data Contributor"]),  # the app's tables
        ("Microsoft.KeyVault/vaults", ROLE["Key Vault Secrets User"]),  # Key Vault references
        ("Microsoft.Insights/components", ROLE["Monitoring Metrics Publisher"]),  # Entra ID telemetry
        # Stored recordings: read, write and delete in their container, and user-delegation SAS links.
        ("Microsoft.Storage/storageAccounts/blobServices/containers", ROLE["Storage Blob Data Contributor"]),
        ("Microsoft.Storage/storageAccounts", ROLE["Storage Blob Delegator"]),
    }


def test_app_assignments_are_unconditional_service_principal_assignments():
    for assignment in _assignments():
        if assignment["principal"] == "appPrincipalId":
            assert assignment["principalType"] == "ServicePrincipal", assignment["name"]
            assert not assignment["conditional"], assignment["name"]


def test_assignment_names_are_unique_per_scope_principal_and_role():
    for assignment in _assignments():
        assert assignment["principal"] in assignment["guid_strings"], assignment["name"]
        assert assignment["role"] in assignment["guid_strings"], assignment["name"]


def test_developer_roles_exist_only_when_a_principal_is_given():
    developer = [a for a in _assignments() if a["principal"] == "developerPrincipalId"]
    assert {(a["scope"], a["role"]) for a in developer} == {
        ("Microsoft.Storage/storageAccounts", ROLE["Storage Blob Data Owner"]),
        ("Microsoft.Storage/storageAccounts", ROLE["Storage Queue Data Contributor"]),
        ("Microsoft.Storage/storageAccounts", ROLE["Storage Table Data Contributor"]),
        ("Microsoft.KeyVault/vaults", ROLE["Key Vault Secrets Officer"]),
    }
    assert all(a["conditional"] for a in developer)


def test_role_assignments_live_only_in_the_rbac_module_and_get_the_app_identity():
    for path in bicep_files():
        if path.name != "rbac.bicep":
            assert not resources_of_type(parse(path), "Microsoft.Authorization/roleAssignments"), path.name
    params = body(main()["modules"]["rbac"])["params"]
    assert dotted(params["appPrincipalId"]) == "functionApp.outputs.principalId"
    assert params["developerPrincipalId"] == "principalId"


# --- Alerts --------------------------------------------------------------------------------------


def _alerts() -> dict[str, dict]:
    rules = resources_of_type(module("alerts"), "Microsoft.Insights/scheduledQueryRules")
    return {name: body(entry) for name, entry in rules.items()}


def _query(rule: dict) -> str:
    query = rule["properties"]["criteria"]["allOf"][0]["query"]
    variables = module("alerts")["variables"]
    template = function_call(query, "format")
    if template is not None:
        return variables[template["format_string"]]["value"]
    return variables[query]["value"] if query in variables else query


def test_four_alerts_query_app_insights_and_notify_the_action_group():
    alerts = _alerts()
    assert set(alerts) == {"poisonQueueAlert", "http5xxAlert", "webhookSilenceAlert", "stuckWorkAlert"}
    for name, rule in alerts.items():
        assert rule["properties"]["scopes"] == ["applicationInsightsId"], name
        assert rule["properties"]["actions"] == {"actionGroups": "actionGroups"}, name
        assert rule["properties"]["enabled"] is True, name
    assert "actionGroupId" in strings(module("alerts")["variables"]["actionGroups"]["value"])
    assert body(main()["modules"]["alerts"])["params"]["actionGroupId"] == "alertActionGroupId"


def test_poison_alert_fires_per_queue_on_any_move_to_a_poison_queue():
    rule = _alerts()["poisonQueueAlert"]
    query = _query(rule)
    assert "Moving message to queue" in query and "-poison" in query
    criterion = rule["properties"]["criteria"]["allOf"][0]
    assert criterion["operator"] == "GreaterThan" and criterion["threshold"] == 0
    assert [d["name"] for d in criterion["dimensions"]] == ["queueName"]
    assert "by queueName" in query


def test_5xx_alert_is_a_rate_over_requests():
    query = _query(_alerts()["http5xxAlert"])
    assert "requests" in query and "resultCode" in query and ">= 500" in query and "failedPercent" in query


def test_webhook_silence_alert_uses_verified_deliveries_and_live_meetings():
    rule = _alerts()["webhookSilenceAlert"]
    query = _query(rule)
    for needle in (
        '"webhooks.receive"',
        "toint(m.status) == 200",
        '"events.status"',
        'activity == "live"',
        "arg_max(timestamp, activity) by meetingId",
        "parse_json(message)",
        "ago(silence)",
    ):
        assert needle in query, needle
    args = function_call(rule["properties"]["criteria"]["allOf"][0]["query"], "format")
    assert "webhookSilenceMinutes" in strings(args)
    assert body(main()["modules"]["alerts"])["params"]["webhookSilenceMinutes"] == "webhookSilenceMinutes"
    assert decorator(main()["parameters"]["webhookSilenceMinutes"], "description")


def test_stuck_work_alert_fires_per_kind_of_work_waiting_over_ten_minutes():
    rule = _alerts()["stuckWorkAlert"]
    query = _query(rule)
    for needle in (
        'operation == "pending.retry" and toint(m.attempts) >= 10',
        'operation == "events.sweep" and toint(m.requeued) > 0',
        "summarize stuck = count() by work",
    ):
        assert needle in query, needle
    # attempts >= 10 means more than 10 minutes of retries: the delays before it add up to over 600 s
    # (each within 10% of 2, 4, ... 512 s).
    from shared import pending

    assert sum(pending.backoff(attempt).total_seconds() for attempt in range(1, 10)) >= 600
    criterion = rule["properties"]["criteria"]["allOf"][0]
    assert [d["name"] for d in criterion["dimensions"]] == ["work"]
    assert criterion["metricMeasureColumn"] == "stuck" and criterion["threshold"] == 0
    assert rule["properties"]["windowSize"] == "PT1H" and rule["properties"]["autoMitigate"] is True


@pytest.mark.parametrize("rule_name", ["http5xxAlert", "webhookSilenceAlert"])
def test_alert_query_templates_have_exactly_the_placeholders_format_fills(rule_name: str):
    # ARM format() is .NET composite formatting: a stray brace in KQL would break the deployment.
    rule = _alerts()[rule_name]
    args = function_call(rule["properties"]["criteria"]["allOf"][0]["query"], "format")
    argument_count = len([key for key in args if key != "format_string" and args[key] is not None])
    template = _query(rule)
    assert sorted(set(re.findall(r"\{(\d+)\}", template))) == [str(i) for i in range(argument_count)]
    assert not re.search(r"\{(?!\d+\})|(?<!\{\d)(?<!\{\d\d)\}", template), "unescaped brace in the KQL template"


# --- Entra app registration ------------------------------------------------------------------------


def test_app_registration_module_is_optional_and_feeds_auth_client_id():
    modules = main()["modules"]
    assert condition(modules["appRegistration"]) == "deployAppRegistration"
    assert main()["parameters"]["deployAppRegistration"]["default"] is False
    assert body(modules["appSettings"])["params"]["authClientId"] == "apiClientId"
    assert main()["outputs"]["AUTH_CLIENT_ID"]["value"] == "apiClientId"
    # The created registration's client ID when it is deployed, else the parameter (BCP318-safe read).
    source = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "var apiClientId = appRegistration.?outputs.clientId ?? authClientId" in source


def test_app_registration_exposes_access_as_user_with_v2_tokens_and_verified_email_claims():
    parsed = module("appregistration")
    assert "microsoftGraphV1" in (MODULES / "appregistration.bicep").read_text()
    aliases = json.loads((INFRA / "bicepconfig.json").read_text())["extensions"]
    assert aliases["microsoftGraphV1"].startswith("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:")
    application = body(only_resource(parsed, "Microsoft.Graph/applications"))
    assert application["api"]["requestedAccessTokenVersion"] == 2
    (scope,) = application["api"]["oauth2PermissionScopes"]
    assert scope["value"] == "scopeName" and scope["type"] == "User" and scope["isEnabled"] is True
    assert parsed["parameters"]["scopeName"]["default"] == "access_as_user"
    assert {claim["name"] for claim in application["optionalClaims"]["accessToken"]} == {"email", "xms_edov"}
    assert application["spa"]["redirectUris"] == "spaRedirectUris"
    assert "uniqueName" in application
    service_principal = body(only_resource(parsed, "Microsoft.Graph/servicePrincipals"))
    assert dotted(service_principal["appId"]) == "application.appId"
    assert dotted(parsed["outputs"]["clientId"]["value"]) == "application.appId"


# --- The SPA on Static Web Apps ----------------------------------------------------------------------


def test_spa_is_a_free_static_web_app_that_azd_deploys_as_web():
    site = body(only_resource(module("staticwebapp"), "Microsoft.Web/staticSites"))
    assert site["sku"] == {"name": "Free", "tier": "Free"}
    assert "'azd-service-name': 'web'" in (MODULES / "staticwebapp.bicep").read_text(encoding="utf-8")
    origin = module("staticwebapp")["outputs"]["origin"]["value"]
    assert origin == "https://${staticWebApp.properties.defaultHostname}"
    assert dotted(main()["variables"]["spaOrigin"]["value"]) == "staticWebApp.outputs.origin"


def test_app_base_url_defaults_to_the_static_web_app():
    assert main()["parameters"]["appBaseUrl"]["default"] == ""
    effective = conditional(main()["variables"]["effectiveAppBaseUrl"]["value"])
    assert effective["true_value"] == "spaOrigin" and effective["false_value"] == "appBaseUrl"
    assert body(main()["modules"]["appSettings"])["params"]["appBaseUrl"] == "effectiveAppBaseUrl"


def test_app_registration_redirects_to_the_static_web_app_and_the_local_dev_server():
    redirect = strings(main()["variables"]["redirectUris"]["value"])
    assert {"spaOrigin", "effectiveAppBaseUrl", "localRedirectUris", "extraRedirectUris"} <= set(redirect)
    assert main()["parameters"]["localSpaOrigin"]["default"] == "http://localhost:5173"
    assert body(main()["modules"]["appRegistration"])["params"]["spaRedirectUris"] == "redirectUris"


def test_outputs_give_the_spa_config_what_it_needs():
    outputs = main()["outputs"]
    names = ("API_BASE_URL", "AUTH_CLIENT_ID", "AUTH_TENANT_ID", "AUTH_SCOPE_URI", "AUTH_AUTHORITY_HOST")
    for name in (*names, "VIDEO_PROVIDER"):
        assert name in outputs, name
    assert outputs["AUTH_SCOPE_URI"]["value"] == "apiScope"
    source = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "var apiScope = appRegistration.?outputs.scopeUri ?? existingApiScope" in source


# --- Outputs and azd -------------------------------------------------------------------------------


def test_outputs_include_the_api_and_webhook_urls():
    outputs = main()["outputs"]
    assert outputs["API_BASE_URL"]["value"] == "https://${functionApp.outputs.defaultHostName}/api"
    assert outputs["WEBHOOK_URL"]["value"] == "https://${functionApp.outputs.defaultHostName}/api/webhooks/dyte"


def test_azd_parameters_file_matches_main_bicep():
    azd = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    parameters = main()["parameters"]
    assert set(azd) <= set(parameters)
    required = {name for name, p in parameters.items() if p.get("default") is None}
    assert required <= set(azd)
    assert azd["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert azd["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_azure_yaml_deploys_the_function_app_and_runs_the_post_provision_hook():
    text = (REPO_ROOT / "azure.yaml").read_text()
    for needle in (
        "host: function",
        "language: python",
        "path: infra",
        "postprovision:",
        "./infra/scripts/postprovision.sh",
    ):
        assert needle in text, needle
    hook = INFRA / "scripts" / "postprovision.sh"
    assert os.access(hook, os.X_OK)
    hook_text = hook.read_text()
    assert "write_local_settings.py" in hook_text
    assert "register-webhook --url" in hook_text and "WEBHOOK_URL" in hook_text
