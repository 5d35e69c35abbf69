"""checkov on infra/ (bicep framework, offline), run once per session.

checkov lives in its own virtual environment (.venv-checkov, from requirements-checkov.txt)
because it pins pycep-parser 0.5.1 while the Bicep tests need 0.7. That parser cannot read the
Microsoft Graph extension file (appregistration.bicep), which test_bicep.py covers instead.

Every skip is an inline `// checkov:skip=ID: reason` comment next to the resource in infra/;
EXPECTED_SKIPS below mirrors them so that a new skip is a reviewed change, not a quiet one.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.infra import INFRA, REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"

# Files checkov's bundled pycep-parser 0.5.1 cannot parse (the `extension` keyword).
UNPARSEABLE_BY_CHECKOV = {"appregistration.bicep"}

# (file, check) -> why; the reason itself lives in the inline comment.
EXPECTED_SKIPS = {
    ("main.bicep", "CKV_AZURE_131"),  # idHashKey's default is newGuid(), not a hardcoded secret
    ("storage.bicep", "CKV_AZURE_35"),  # no VNet: public endpoint, RBAC only
    ("storage.bicep", "CKV_AZURE_59"),  # same
    ("storage.bicep", "CKV_AZURE_43"),  # name from an interpolation the rule cannot evaluate
    ("storage.bicep", "CKV_AZURE_206"),  # redundancy is the storageSkuName parameter
    ("keyvault.bicep", "CKV_AZURE_109"),  # no VNet: public endpoint, RBAC only
    ("keyvault.bicep", "CKV_AZURE_189"),  # same
    ("keyvault-secret.bicep", "CKV_AZURE_41"),  # these secrets must not expire on a fixed date
    ("functionapp.bicep", "CKV_AZURE_225"),  # zone redundancy needs >= 2 always-ready instances
    ("functionapp.bicep", "CKV_AZURE_222"),  # the SPA and provider webhooks call it publicly
    ("functionapp.bicep", "CKV_AZURE_17"),  # no client certificates: bearer tokens, signed webhooks
    ("functionapp.bicep", "CKV_AZURE_212"),  # numberOfWorkers does not apply to Flex
    ("functionapp.bicep", "CKV_AZURE_78"),  # ftpsState is rejected on Flex; FTP off via policy
    # The web-config checks also fire on the 'appsettings' config resource:
    ("appsettings.bicep", "CKV_AZURE_13"),
    ("appsettings.bicep", "CKV_AZURE_63"),
    ("appsettings.bicep", "CKV_AZURE_65"),
    ("appsettings.bicep", "CKV_AZURE_66"),
    ("appsettings.bicep", "CKV_AZURE_80"),
    ("appsettings.bicep", "CKV_AZURE_88"),
    ("appsettings.bicep", "CKV_AZURE_222"),
}

# Checks that must keep passing: they pin the security settings of the issue.
MUST_PASS = {
    ("storage.bicep", "CKV_AZURE_3"),  # HTTPS only
    ("storage.bicep", "CKV_AZURE_44"),  # TLS 1.2
    ("storage.bicep", "CKV_AZURE_34"),  # deployment container private
    ("keyvault.bicep", "CKV_AZURE_42"),  # recoverable
    ("keyvault.bicep", "CKV_AZURE_110"),  # purge protection
    ("keyvault-secret.bicep", "CKV_AZURE_114"),  # content type
    ("functionapp.bicep", "CKV_AZURE_14"),  # HTTPS only
    ("functionapp.bicep", "CKV_AZURE_70"),
    ("functionapp.bicep", "CKV_AZURE_15"),  # TLS 1.2
    ("functionapp.bicep", "CKV_AZURE_145"),
    ("functionapp.bicep", "CKV_AZURE_18"),  # HTTP/2
    ("functionapp.bicep", "CKV_AZURE_67"),
    ("functionapp.bicep", "CKV_AZURE_16"),  # managed identity
    ("functionapp.bicep", "CKV_AZURE_71"),
    ("functionapp.bicep", "CKV_AZURE_57"),  # CORS not '*'
    ("functionapp.bicep", "CKV_AZURE_62"),
    ("functionapp.bicep", "CKV_AZURE_72"),  # no remote debugging
    ("functionapp.bicep", "CKV_AZURE_213"),  # health check
}


@functools.cache
def _run_checkov() -> dict:
    """One checkov run per session; a missing checkov fails every test that needs it."""
    if not CHECKOV.exists():
        pytest.fail(
            f"{CHECKOV.relative_to(REPO_ROOT)} is missing: run `make test` (or `make .venv-checkov/.installed`), "
            "which creates it from requirements-checkov.txt"
        )
    env = {**os.environ, "LOG_LEVEL": "WARNING", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
            "--compact",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), f"checkov crashed ({result.returncode}):\n{result.stderr[-4000:]}"
    parsed = json.loads(result.stdout)
    if isinstance(parsed, list):
        (parsed,) = [item for item in parsed if item.get("check_type") == "bicep"]
    return parsed


def _by_file(records: list[dict]) -> set[tuple[str, str]]:
    return {(Path(record["file_path"]).name, record["check_id"]) for record in records}


def test_checkov_scanned_the_resources():
    report = _run_checkov()
    summary = report["summary"]
    assert summary["resource_count"] > 0
    assert summary["passed"] > 0
    scanned = {name for name, _ in _by_file(report["results"]["passed_checks"] + report["results"]["skipped_checks"])}
    assert {"storage.bicep", "keyvault.bicep", "functionapp.bicep", "main.bicep"} <= scanned


def test_checkov_finds_no_failed_checks():
    report = _run_checkov()
    failed = [
        f"{Path(r['file_path']).name}:{r['resource']} {r['check_id']} {r['check_name']}"
        for r in report["results"]["failed_checks"]
    ]
    assert report["summary"]["failed"] == 0 and not failed, "\n".join(failed)


def test_checkov_parses_every_file_but_the_graph_extension_one():
    report = _run_checkov()
    unparsed = {Path(path).name for path in report["results"].get("parsing_errors", [])}
    assert unparsed == UNPARSEABLE_BY_CHECKOV


def test_every_skip_is_expected_and_has_a_reason():
    report = _run_checkov()
    skipped = report["results"]["skipped_checks"]
    for record in skipped:
        reason = (record["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 20 and reason != "No comment provided", (record["check_id"], record["file_path"])
    assert _by_file(skipped) == EXPECTED_SKIPS


def test_recordings_container_is_private():
    report = _run_checkov()
    private = {
        record["resource"] for record in report["results"]["passed_checks"] if record["check_id"] == "CKV_AZURE_34"
    }
    assert any(resource.endswith(".recordingsContainer") for resource in private), private


def test_security_checks_pass():
    report = _run_checkov()
    passed = _by_file(report["results"]["passed_checks"])
    assert passed >= MUST_PASS, sorted(MUST_PASS - passed)
