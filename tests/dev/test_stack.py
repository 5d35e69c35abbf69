"""`make run` (dev.stack): every part up over real HTTP(S), the SPA's config and the webhooks in place, and
Ctrl-C leaving nothing running. Plus its pieces: the local CA, the settings migration, the SPA config."""

from __future__ import annotations

import datetime
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dev import stack
from dev.harness import CLIENT_ID, EXAMPLE_VALUES, ROOT, TENANT, free_port
from dev.issuer import SPA_CLIENT_ID, load_or_create_key, mint


def _lines(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue, marker: str, seen: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError("the stack exited:\n" + "\n".join(seen[-40:]))
        seen.append(line)
        if line.strip() == marker:
            return
    raise AssertionError(f"no {marker!r} within {timeout} s:\n" + "\n".join(seen[-40:]))


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _processes_naming(ports: list[int]) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(port).encode() in arguments for port in ports):
            found.append(b" ".join(arguments).decode(errors="replace"))
    return found


def test_make_run_starts_every_part_and_ctrl_c_leaves_nothing_running(tmp_path):
    ports = {part: free_port() for part in ("app", "issuer", "provider", "mail", "web")}
    settings = tmp_path / "local.settings.json"
    shutil.copy(ROOT / "local.settings.json.example", settings)
    config_path = tmp_path / "config.json"
    command = [sys.executable, "-m", "dev.stack", "--no-web", "--settings", str(settings)]
    command += ["--spa-config", str(config_path)]
    for part, port in ports.items():
        command += [f"--{part}-port", str(port)]
    # The example's values in the environment: a developer's own local.settings.json changes nothing.
    environment = {**os.environ, **EXAMPLE_VALUES, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    lines = _lines(process)
    try:
        _wait_for(lines, "Ready.", seen, timeout=120)
        assert seen[0].startswith("Starting the local stack; the SPA will be on http://localhost:")
        azurite_line = next(line for line in seen if "Azurite: tables on" in line)
        storage_ports = [int(word.strip(",")) for word in azurite_line.split() if word.strip(",").isdigit()]

        config = json.loads(config_path.read_text())
        issuer = f"https://localhost:{ports['issuer']}"
        assert config == {
            "authority": f"{issuer}/{TENANT}/v2.0",
            "clientId": SPA_CLIENT_ID,
            "knownAuthorities": [f"localhost:{ports['issuer']}"],
            "protocolMode": "OIDC",
            "apiBaseUrl": f"http://127.0.0.1:{ports['app']}/api",
            "scopes": [f"api://{CLIENT_ID}/access_as_user"],
            "localRoom": {"baseUrl": f"http://127.0.0.1:{ports['provider']}/__room"},
            "mailboxUrl": f"https://localhost:{ports['mail']}/mailbox",
        }

        trusting = requests.Session()
        trusting.trust_env = False
        trusting.verify = str(stack.TLS_DIRECTORY / "ca.pem")
        metadata = trusting.get(f"{config['authority']}/.well-known/openid-configuration").json()
        assert metadata["issuer"] == config["authority"]
        assert trusting.get(f"https://localhost:{ports['mail']}/mailbox.json").json() == {"items": []}

        app = config["apiBaseUrl"]
        assert requests.get(f"{app}/health", timeout=5).status_code == 200
        spa_origin = f"http://localhost:{ports['web']}"
        preflight = requests.options(
            f"{app}/meetings",
            headers={"Origin": spa_origin, "Access-Control-Request-Method": "POST"},
            timeout=5,
        )
        assert preflight.headers.get("Access-Control-Allow-Origin") == spa_origin

        provider = f"http://127.0.0.1:{ports['provider']}"
        values = EXAMPLE_VALUES
        dyte = requests.get(f"{provider}/v2/webhooks", auth=(values["DYTE_ORG_ID"], values["DYTE_API_KEY"]), timeout=5)
        rtk_path = f"/client/v4/accounts/{values['REALTIMEKIT_ACCOUNT_ID']}/realtime/kit/{values['REALTIMEKIT_APP_ID']}"
        rtk = requests.get(
            f"{provider}{rtk_path}/webhooks",
            headers={"Authorization": f"Bearer {values['REALTIMEKIT_API_TOKEN']}"},
            timeout=5,
        )
        receiver = f"{app}/webhooks/dyte"
        assert [hook["url"] for hook in dyte.json()["data"]] == [receiver]
        assert [hook["url"] for hook in rtk.json()["data"]] == [receiver]

        # The app verifies the issuer's tokens through its JWKS over HTTPS and sends mail to the local mailbox.
        token = mint(
            load_or_create_key(),
            issuer_template=issuer + "/{tid}/v2.0",
            audience=CLIENT_ID,
            tenant=TENANT,
            email="alice@contoso.test",
        )
        invitee = {"email": "bob@contoso.test", "role": "participant"}
        created = requests.post(
            f"{app}/meetings",
            json={"title": "Standup", "invitees": [invitee]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 20
        while not (items := trusting.get(f"https://localhost:{ports['mail']}/mailbox.json").json()["items"]):
            assert time.monotonic() < deadline, "no invitation reached the local mailbox"
            time.sleep(0.2)
        assert items[0]["to"] == ["bob@contoso.test"] and items[0]["subject"] == "Invitation: Standup"
        assert f"http://localhost:{ports['web']}/meetings/{created.json()['id']}" in items[0]["body"]["content"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=40)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert code == 0, "\n".join(seen[-40:])
    everything = [*ports.values(), *storage_ports]
    assert not [port for port in everything if _listening(port)]
    assert _processes_naming(list(ports.values())) == []


def test_the_local_ca_is_made_once_signs_only_localhost_and_is_renewed_before_expiry(tmp_path):
    now = datetime.datetime.now(datetime.UTC)
    tls, made = stack.local_tls(tmp_path, now)
    assert made
    assert stack.local_tls(tmp_path, now) == (tls, False)
    chain = x509.load_pem_x509_certificates(tls.certificate.read_bytes())
    leaf, ca = chain[0], x509.load_pem_x509_certificate(tls.ca.read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(map(str, names.get_values_for_type(x509.IPAddress))) == ["127.0.0.1", "::1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert leaf.issuer == ca.subject
    assert leaf.not_valid_after_utc - now <= datetime.timedelta(days=825)
    # One private key on disk, the leaf's: the CA's was never written, so it can sign nothing else.
    keys = [path for path in tmp_path.iterdir() if b"PRIVATE KEY" in path.read_bytes()]
    assert keys == [tls.certificate]
    key = serialization.load_pem_private_key(tls.certificate.read_bytes(), password=None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    trust = tls.trust.read_bytes()
    assert trust.endswith(tls.ca.read_bytes()) and trust.count(b"BEGIN CERTIFICATE") > 50  # the public CAs too

    later = now + datetime.timedelta(days=stack.CERTIFICATE_DAYS - stack.RENEW_DAYS + 1)
    renewed, made = stack.local_tls(tmp_path, later)
    assert made and x509.load_pem_x509_certificate(renewed.ca.read_bytes()) != ca


def test_a_local_settings_file_with_the_old_plain_http_issuer_is_updated(tmp_path):
    document = json.loads((ROOT / "local.settings.json.example").read_text())
    document["Values"].update(
        AUTH_ISSUER="http://127.0.0.1:7072/{tid}/v2.0",
        AUTH_JWKS_URI="http://127.0.0.1:7072/discovery/v2.0/keys",
        DYTE_ORG_ID="my-own-org",
    )
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(document))
    stack.settings_file(path)
    values = json.loads(path.read_text())["Values"]
    assert values["AUTH_ISSUER"] == EXAMPLE_VALUES["AUTH_ISSUER"] == "https://localhost:7072/{tid}/v2.0"
    assert values["AUTH_JWKS_URI"] == EXAMPLE_VALUES["AUTH_JWKS_URI"]
    assert values["DYTE_ORG_ID"] == "my-own-org"
    # A developer's own issuer is left alone.
    document["Values"]["AUTH_ISSUER"] = "https://login.microsoftonline.com/{tid}/v2.0"
    path.write_text(json.dumps(document))
    stack.settings_file(path)
    assert json.loads(path.read_text())["Values"]["AUTH_ISSUER"] == "https://login.microsoftonline.com/{tid}/v2.0"


def _plan(tmp_path, monkeypatch, **values: str) -> stack.Plan:
    document = json.loads((ROOT / "local.settings.json.example").read_text())
    document["Values"].update(values)
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps(document))
    for name in document["Values"]:
        monkeypatch.delenv(name, raising=False)
    arguments = {f"{part}_port": None for part in ("app", "issuer", "provider", "mail", "web")}
    return stack.plan(SimpleNamespace(settings=str(path), **arguments))


def test_against_entra_id_and_a_real_provider_the_spa_config_says_so(tmp_path, monkeypatch):
    real = _plan(
        tmp_path,
        monkeypatch,
        AUTH_ISSUER="",
        AUTH_JWKS_URI="",
        DYTE_API_BASE_URL="https://api.dyte.io/v2",
        REALTIMEKIT_API_BASE_URL="",
        MAIL_SENDER="meetings@contoso.com",
    )
    monkeypatch.delenv("MEETINGS_SPA_CLIENT_ID", raising=False)
    monkeypatch.delenv("MEETINGS_API_SCOPE", raising=False)
    assert real.spa_config()["clientId"] == CLIENT_ID  # one registration for SPA and API, as infra/ makes it
    monkeypatch.setenv("MEETINGS_SPA_CLIENT_ID", "11111111-2222-4333-8444-555555555555")
    monkeypatch.setenv("MEETINGS_API_SCOPE", "api://contoso/meetings/access_as_user")
    config = real.spa_config()
    assert config["scopes"] == ["api://contoso/meetings/access_as_user"]
    assert config["authority"] == f"https://login.microsoftonline.com/{TENANT}"
    assert (config["protocolMode"], config["knownAuthorities"]) == ("AAD", [])
    assert config["clientId"] == "11111111-2222-4333-8444-555555555555"
    assert config["localRoom"] is None and config["mailboxUrl"] is None
    environment = real.environment()
    assert "AUTH_ISSUER" not in environment and "DYTE_API_BASE_URL" not in environment
    assert "MAIL_SENDER" not in environment

    allowed = _plan(tmp_path, monkeypatch, AUTH_ALLOWED_TENANTS=f"{TENANT},0b0b0b0b-1111-4222-8333-444444444444")
    assert allowed.spa_config()["authority"] == "https://localhost:7072/organizations/v2.0"
    # The local room only while new meetings go to the stand-in.
    mixed = _plan(tmp_path, monkeypatch, VIDEO_PROVIDER="realtimekit", REALTIMEKIT_API_BASE_URL="")
    assert mixed.spa_config()["localRoom"] is None and mixed.local_providers == ("dyte",)
