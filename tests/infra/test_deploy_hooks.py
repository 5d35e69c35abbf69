"""The azd hooks, run as azd runs them (bash, the azd environment as environment variables) with a
made-up environment: the preprovision check stops `azd up` with one line per missing setting, the
post-provision hook records what it moved into Key Vault, and the web service's predeploy hook
writes the SPA's /config.json from the deployment's outputs. azd itself cannot run here: where a
hook calls it, a stand-in script on the PATH records the call."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.imports import package_sources
from tests.infra import INFRA, REPO_ROOT, decorator, main, module

SCRIPTS = INFRA / "scripts"
CLIENT_ID = "3f6a1e2d-8b4c-4f5a-9e7d-1c2b3a4d5e6f"
TENANT_ID = "7d1b3c52-2a3f-4d7e-9c1a-5b6f0e4d2c11"


def _run(script: str, env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    # A bare environment: nothing from the developer's shell or azd leaks into the check.
    base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "AZURE_ENV_NAME": "meetings-test"}
    return subprocess.run(
        ["bash", str(SCRIPTS / script)],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- preprovision ----------------------------------------------------------------------------------


def test_an_empty_environment_names_each_missing_setting_on_its_own_line():
    result = _run("preprovision.sh", {})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "preprovision: DYTE_ORG_ID is missing: VIDEO_PROVIDER=dyte needs it "
        "(azd env set DYTE_ORG_ID <Dyte organization ID>)",
        "preprovision: DYTE_API_KEY is missing: VIDEO_PROVIDER=dyte needs it; it is moved into Key Vault secret "
        "dyte-api-key after the first provision (azd env set DYTE_API_KEY <Dyte API key>)",
        "preprovision: AUTH_CLIENT_ID is missing: the API's app registration (the token audience); or azd env set "
        "DEPLOY_APP_REGISTRATION true (azd env set AUTH_CLIENT_ID <client ID>)",
        "preprovision: 3 setting(s) to fix before provisioning (nothing was created); see docs/deploy.md",
    ]


def test_realtimekit_needs_its_account_app_and_token():
    result = _run("preprovision.sh", {"VIDEO_PROVIDER": "realtimekit", "AUTH_CLIENT_ID": CLIENT_ID})
    assert result.returncode == 1
    names = [line.split(" ")[1] for line in result.stderr.splitlines()[:-1]]
    assert names == ["REALTIMEKIT_ACCOUNT_ID", "REALTIMEKIT_APP_ID", "REALTIMEKIT_API_TOKEN"]


def test_a_complete_first_provision_passes_silently():
    result = _run(
        "preprovision.sh",
        {"VIDEO_PROVIDER": "dyte", "DYTE_ORG_ID": "org", "DYTE_API_KEY": "key", "AUTH_CLIENT_ID": CLIENT_ID},
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_secret_already_moved_into_key_vault_is_not_asked_for_again():
    env = {"DYTE_ORG_ID": "org", "AUTH_CLIENT_ID": CLIENT_ID, "KEY_VAULT_SECRETS": "dyte-api-key"}
    assert _run("preprovision.sh", env).returncode == 0


def test_a_created_app_registration_needs_no_client_id():
    env = {"DYTE_ORG_ID": "org", "DYTE_API_KEY": "key", "DEPLOY_APP_REGISTRATION": "true"}
    assert _run("preprovision.sh", env).returncode == 0


def test_the_other_provider_once_configured_needs_its_secret_too():
    env = {"DYTE_ORG_ID": "org", "DYTE_API_KEY": "key", "AUTH_CLIENT_ID": CLIENT_ID, "REALTIMEKIT_ACCOUNT_ID": "acct"}
    result = _run("preprovision.sh", env)
    assert result.returncode == 1
    assert "REALTIMEKIT_APP_ID is missing: REALTIMEKIT_ACCOUNT_ID is set, so RealtimeKit needs it" in result.stderr


def test_mail_once_turned_on_needs_its_client_and_credential():
    env = {"DYTE_ORG_ID": "org", "DYTE_API_KEY": "key", "AUTH_CLIENT_ID": CLIENT_ID, "MAIL_SENDER": "m@contoso.com"}
    result = _run("preprovision.sh", {**env, "MAIL_CREDENTIAL_TYPE": "certificate"})
    names = [line.split(" ")[1] for line in result.stderr.splitlines()[:-1]]
    assert names == ["MAIL_CLIENT_ID", "MAIL_CLIENT_CREDENTIAL"]
    assert "Key Vault secret mail-client-certificate" in result.stderr
    stored = {**env, "MAIL_CLIENT_ID": CLIENT_ID, "KEY_VAULT_SECRETS": "dyte-api-key,mail-client-secret"}
    assert _run("preprovision.sh", stored).returncode == 0


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("VIDEO_PROVIDER", "zoom", "VIDEO_PROVIDER is 'zoom': use one of dyte, realtimekit"),
        ("DEPLOY_APP_REGISTRATION", "yes", "DEPLOY_APP_REGISTRATION is 'yes': use true or false"),
        ("RECORDING_RETENTION_DAYS", "0", "RECORDING_RETENTION_DAYS is '0': use a whole number from 1 to 3650"),
        (
            "AUTH_CLIENT_ID",
            "meetings-api",
            "AUTH_CLIENT_ID is 'meetings-api': use the registration's client ID (a GUID)",
        ),
        ("STATIC_WEB_APP_LOCATION", "northeurope", "STATIC_WEB_APP_LOCATION is 'northeurope': use one of westus2, "),
        ("APP_BASE_URL", "https://app.example.com/", "APP_BASE_URL is 'https://app.example.com/': use a bare origin"),
    ],
)
def test_an_invalid_value_is_named(name: str, value: str, line: str):
    env = {"DYTE_ORG_ID": "org", "DYTE_API_KEY": "key", "AUTH_CLIENT_ID": CLIENT_ID, name: value}
    result = _run("preprovision.sh", env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(f"preprovision: {line}"), result.stderr


def test_the_checks_allowed_values_are_main_bicep_s():
    spec = importlib.util.spec_from_file_location("check", SCRIPTS / "check_provision_settings.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    by_variable = {entry["value"].strip("${}").split("=")[0]: name for name, entry in parameters.items()}
    for variable, allowed in check.ALLOWED.items():
        if variable == "STATIC_WEB_APP_LOCATION":
            continue  # main.bicep keeps the list in a variable; the module's @allowed is checked below
        declared = decorator(main()["parameters"][by_variable[variable]], "allowed")["argument"]
        assert tuple(declared) == allowed, variable
    regions = decorator(module("staticwebapp")["parameters"]["location"], "allowed")["argument"]
    assert tuple(regions) == check.ALLOWED["STATIC_WEB_APP_LOCATION"]


# --- postprovision ---------------------------------------------------------------------------------


def _fake_azd(tmp_path: Path) -> tuple[dict[str, str], Path]:
    calls = tmp_path / "azd-calls.txt"
    azd = tmp_path / "bin" / "azd"
    azd.parent.mkdir()
    azd.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n', encoding="utf-8")
    azd.chmod(0o755)
    path = f"{azd.parent}:{Path(sys.executable).parent}:/usr/bin:/bin"
    return {"PATH": path, "LOCAL_SETTINGS_WRITE": "false", "PROVIDER_CHECKS": "false"}, calls


def test_post_provision_moves_secrets_and_records_them_for_the_next_preprovision(tmp_path: Path):
    env, calls = _fake_azd(tmp_path)
    env |= {"DYTE_API_KEY": "key", "MAIL_CLIENT_CREDENTIAL": "pem", "MAIL_CREDENTIAL_TYPE": "certificate"}
    result = _run("postprovision.sh", {**env, "KEY_VAULT_SECRETS": "id-hash-key"})
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == [
        "env set WRITE_ID_HASH_KEY false",
        "env set DYTE_API_KEY ",
        "env set MAIL_CLIENT_CREDENTIAL ",
        "env set KEY_VAULT_SECRETS id-hash-key,dyte-api-key,mail-client-certificate",
    ]
    assert "PROVIDER_CHECKS=false: webhook registration and the presets check skipped" in result.stdout


def test_post_provision_records_nothing_when_nothing_moved(tmp_path: Path):
    env, calls = _fake_azd(tmp_path)
    result = _run("postprovision.sh", {**env, "WRITE_ID_HASH_KEY": "false", "KEY_VAULT_SECRETS": "dyte-api-key"})
    assert result.returncode == 0, result.stderr
    assert not calls.exists()


# --- predeploy of the web service ------------------------------------------------------------------

OUTPUTS = {
    "AUTH_CLIENT_ID": CLIENT_ID,
    "AUTH_TENANT_ID": TENANT_ID,
    "AUTH_SCOPE_URI": f"api://{TENANT_ID}/meetings-api-abc/access_as_user",
    "API_BASE_URL": "https://func-abc.azurewebsites.net/api",
    "AUTH_AUTHORITY_HOST": "https://login.microsoftonline.com/",
    "VIDEO_PROVIDER": "realtimekit",
}


def _web(tmp_path: Path) -> Path:
    (tmp_path / "web" / "dist").mkdir(parents=True)
    return tmp_path / "web"


def test_predeploy_writes_the_spa_config_from_the_outputs(tmp_path: Path):
    web = _web(tmp_path)
    result = _run("predeploy-web.sh", OUTPUTS, cwd=web)
    assert result.returncode == 0, result.stderr
    assert json.loads((web / "dist" / "config.json").read_text()) == {
        "authority": f"https://login.microsoftonline.com/{TENANT_ID}",
        "clientId": CLIENT_ID,
        "apiBaseUrl": "https://func-abc.azurewebsites.net/api",
        "scopes": [f"api://{TENANT_ID}/meetings-api-abc/access_as_user"],
        "provider": "realtimekit",
    }


def test_predeploy_uses_the_organizations_authority_when_other_tenants_may_sign_in(tmp_path: Path):
    web = _web(tmp_path)
    other = "0f1e2d3c-4b5a-4968-8776-655443322110"
    env = {
        **OUTPUTS,
        "AUTH_ALLOWED_TENANTS": f"{TENANT_ID},{other}",
        "AUTH_AUTHORITY_HOST": "https://login.microsoftonline.us/",
    }
    assert _run("predeploy-web.sh", env, cwd=web).returncode == 0
    assert (
        json.loads((web / "dist" / "config.json").read_text())["authority"]
        == "https://login.microsoftonline.us/organizations"
    )


def test_predeploy_before_provisioning_names_each_missing_output(tmp_path: Path):
    web = _web(tmp_path)
    result = _run("predeploy-web.sh", {"VIDEO_PROVIDER": "dyte"}, cwd=web)
    assert result.returncode == 1
    assert [line.split(" ")[2] for line in result.stderr.splitlines()] == list(
        ("AUTH_CLIENT_ID", "AUTH_TENANT_ID", "AUTH_SCOPE_URI", "API_BASE_URL")
    )
    assert not (web / "dist" / "config.json").exists()


def test_predeploy_without_a_build_says_so(tmp_path: Path):
    (tmp_path / "web").mkdir()
    result = _run("predeploy-web.sh", OUTPUTS, cwd=tmp_path / "web")
    assert result.returncode == 1
    assert "does not exist: the SPA was not built (npm run build in web/)" in result.stderr


# --- prepackage of the api service -------------------------------------------------------------------


def _package(tmp_path: Path) -> Path:
    return package_sources(REPO_ROOT, tmp_path / "package")


def _bin(tmp_path: Path, pythons: dict[str, str]) -> str:
    """A PATH with the hook's tools and these stand-in Pythons only (name -> shell script body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "sed", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool, path="/usr/bin:/bin"))
    for name, body in pythons.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


def _pyc_flags(root: Path) -> dict[Path, int]:
    """The header flags of each of the package's compiled files (0: timestamp, 0b11: checked-hash)."""
    sources = [*sorted((root / "shared").rglob("*.py")), root / "function_app.py"]
    return {
        source: int.from_bytes(Path(importlib.util.cache_from_source(str(source))).read_bytes()[4:8], "little")
        for source in sources
    }


def _prepackage(root: Path, path: str) -> subprocess.CompletedProcess[str]:
    """The copy's own hook, which compiles the package it lies in."""
    return subprocess.run(
        [shutil.which("bash"), str(root / "infra" / "scripts" / "prepackage-api.sh")],
        env={"PATH": path},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _loaded_from_cache(root: Path, module: str) -> bool:
    """Whether a fresh Python importing `module` in `root` runs its compiled file (`-v` names where code comes from)."""
    done = subprocess.run(
        [sys.executable, "-v", "-c", f"import {module}"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    compiled = importlib.util.cache_from_source(str(root / Path(*module.split(".")).with_suffix(".py")))
    return f"# code object from '{compiled}'" in done.stderr


def test_prepackage_compiles_our_modules_so_a_cold_start_from_the_package_compiles_none(tmp_path: Path):
    root = _package(tmp_path)
    done = _prepackage(root, f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert "compiled for Python 3.11" in done.stdout
    not_checked = [source for source, flags in _pyc_flags(root).items() if flags != 0b11]
    assert not_checked == []  # every pyc hash-based, checked against the source
    assert _loaded_from_cache(root, "shared.schema")
    # A source changed after packaging is never run from its stale compiled file.
    schema = root / "shared" / "schema.py"
    schema.write_text(schema.read_text(encoding="utf-8") + "\nCHANGED_AFTER_PACKAGING = True\n", encoding="utf-8")
    assert not _loaded_from_cache(root, "shared.schema")


def test_prepackage_without_the_runtime_s_python_says_so_and_compiles_nothing(tmp_path: Path):
    root = _package(tmp_path)
    done = _prepackage(root, _bin(tmp_path, {"python3": "echo 3.12"}))
    assert done.returncode == 0, done.stderr
    assert "no Python 3.11 on the PATH (found 3.12)" in done.stdout
    assert not list(root.rglob("*.pyc"))


def test_prepackage_over_a_dev_tree_s_timestamp_pycs_ships_checked_hash_ones(tmp_path: Path):
    # A developer's tree holds the timestamp pycs its own runs wrote (now shipped, .funcignore keeps __pycache__).
    # compileall skips a source whose timestamp pyc matches its time: the package would ship those, which a zip's
    # times (2 s steps) make stale in Azure, and which a source changed within its second would run stale.
    root = _package(tmp_path)
    subprocess.run(
        [sys.executable, "-c", "import function_app, shared.schema"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
        check=False,  # function_app needs the libraries of the venv; its pyc is written before it runs
    )
    written = Path(importlib.util.cache_from_source(str(root / "shared" / "schema.py")))
    assert int.from_bytes(written.read_bytes()[4:8], "little") == 0  # the dev run's: a timestamp pyc
    done = _prepackage(root, f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert [source for source, flags in _pyc_flags(root).items() if flags != 0b11] == []


def test_prepackage_with_a_broken_python_of_the_runtime_s_version_says_so_and_compiles_nothing(tmp_path: Path):
    # pyenv's shim for a version the current directory does not select, a dangling link: on the PATH, yet it
    # fails. The hook must fall back as when there is none, not stop azd (set -e on the failing substitution).
    root = _package(tmp_path)
    broken = "echo 'pyenv: python3.11: command not found' >&2\nexit 127"
    done = _prepackage(root, _bin(tmp_path, {"python3.11": broken, "python3": "echo 3.12"}))
    assert done.returncode == 0, done.stderr
    assert "no Python 3.11 on the PATH (found 3.12)" in done.stdout
    assert not list(root.rglob("*.pyc"))


def test_prepackage_without_any_python_says_so_and_compiles_nothing(tmp_path: Path):
    root = _package(tmp_path)
    done = _prepackage(root, _bin(tmp_path, {}))
    assert done.returncode == 0, done.stderr
    assert "no Python 3.11 on the PATH" in done.stdout
    assert not list(root.rglob("*.pyc"))


# --- azure.yaml --------------------------------------------------------------------------------------


def test_azure_yaml_deploys_both_services_and_runs_every_hook():
    config = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert config["requiredVersions"]["azd"] == ">= 1.17.0"
    api = config["services"]["api"]
    assert (api["project"], api["language"], api["host"]) == (".", "python", "function")
    assert api["hooks"]["prepackage"]["posix"]["run"] == "bash ./infra/scripts/prepackage-api.sh"
    assert api["hooks"]["prepackage"]["posix"]["continueOnError"] is False
    web = config["services"]["web"]
    assert (web["project"], web["language"], web["host"], web["dist"]) == ("web", "js", "staticwebapp", "dist")
    assert web["hooks"]["predeploy"]["posix"]["run"] == "bash ../infra/scripts/predeploy-web.sh"
    for hook, script in (("preprovision", "preprovision.sh"), ("postprovision", "postprovision.sh")):
        step = config["hooks"][hook]["posix"]
        assert step["run"] == f"bash ./infra/scripts/{script}" and step["continueOnError"] is False
    for script in ("preprovision.sh", "postprovision.sh", "predeploy-web.sh", "prepackage-api.sh"):
        assert os.access(SCRIPTS / script, os.X_OK), script


def test_the_function_app_package_leaves_the_spa_out():
    assert "web" in (REPO_ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
