"""`make run`: the whole local stack in one command, stopped as one by Ctrl-C.

In order: the SPA's npm packages (first run only), Azurite (in memory, telemetry off; the default
ports when free, else free ones), the token issuer over HTTPS, the provider stand-in (which serves
the local room), the Graph stand-in with the local mailbox over HTTPS, the app on the dev host (or
`func start` when Core Tools is on the PATH and MEETINGS_USE_FUNC=1), the provider webhooks
registered at the stand-in for both providers, the SPA's `config.json`, and the SPA's dev server.

Ports and what is local come from local.settings.json (created from the example when missing):
the issuer is local when AUTH_ISSUER is on loopback, the provider when its API base URL is, mail
when MAIL_SENDER is empty. Whatever the stack decides reaches the app through its environment,
which wins over local.settings.json as app settings do in Azure.

HTTPS: a local CA is made once under `.local/tls/` (its private key is discarded as soon as it has
signed the one certificate, for localhost, 127.0.0.1 and ::1, so trusting it can vouch for nothing
else). The app trusts it through REQUESTS_CA_BUNDLE, pointed at `trust.pem`: the public CAs plus
this one, so a real provider or Entra ID stays reachable.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from dev.azurite import Azurite
from shared.settings import read_values

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
TLS_DIRECTORY = ROOT / ".local" / "tls"
SPA_CONFIG = WEB / "public" / "config.json"
CERTIFICATE_DAYS = 800  # under the 825 days Apple platforms accept for any TLS server certificate
RENEW_DAYS = 30
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# What earlier versions of local.settings.json.example said, when the issuer spoke plain HTTP.
_OLD_ISSUER = {
    "AUTH_ISSUER": "http://127.0.0.1:7072/{tid}/v2.0",
    "AUTH_JWKS_URI": "http://127.0.0.1:7072/discovery/v2.0/keys",
}
# The Graph stand-in's app registration (its defaults), and the mailbox the app sends as.
LOCAL_MAIL = {
    "MAIL_SENDER": "meetings@contoso.test",
    "MAIL_TENANT_ID": "5c0c6f0e-3b6a-4a53-9d7f-2f0b8f1d6a11",
    "MAIL_CLIENT_ID": "a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b",
    "MAIL_CLIENT_SECRET": "local-graph-client-secret",
}


# The local CA


@dataclass(frozen=True)
class LocalTls:
    directory: Path

    @property
    def ca(self) -> Path:
        """The CA certificate: what a browser or the system trust store is told to trust."""
        return self.directory / "ca.pem"

    @property
    def certificate(self) -> Path:
        """The servers' private key and certificate chain, for localhost, 127.0.0.1 and ::1."""
        return self.directory / "localhost.pem"

    @property
    def trust(self) -> Path:
        """The public CAs (certifi) plus the local CA: REQUESTS_CA_BUNDLE for the app."""
        return self.directory / "trust.pem"


def local_tls(directory: Path = TLS_DIRECTORY, now: datetime.datetime | None = None) -> tuple[LocalTls, bool]:
    """The local CA and the servers' certificate, made when missing or about to expire; (tls, made now)."""
    import certifi
    import trustme
    from cryptography import x509

    tls = LocalTls(directory)
    now = now or datetime.datetime.now(datetime.UTC)
    if tls.ca.exists() and tls.certificate.exists() and tls.trust.exists():
        certificate = x509.load_pem_x509_certificate(tls.certificate.read_bytes())
        if certificate.not_valid_after_utc - now > datetime.timedelta(days=RENEW_DAYS):
            return tls, False
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Meetings local development CA")
    leaf = ca.issue_cert(
        "localhost",
        "127.0.0.1",
        "::1",
        organization_name="Meetings local development",
        not_before=now - datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=CERTIFICATE_DAYS),
    )
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tls.certificate))
    tls.certificate.chmod(0o600)
    ca.cert_pem.write_to_path(str(tls.ca))
    tls.trust.write_bytes(Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + ca.cert_pem.bytes())
    return tls, True  # `ca` (and with it the CA's private key) goes out of scope here, never written


# What to start


@dataclass
class Plan:
    """Everything the stack starts, and the settings that tie the parts together."""

    values: dict[str, str]
    cors: list[str]
    app_port: int
    issuer_port: int
    provider_port: int
    mail_port: int
    web_port: int
    tls: LocalTls
    local_issuer: bool = field(init=False)
    local_mail: bool = field(init=False)
    local_providers: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.local_issuer = _is_loopback(self.values.get("AUTH_ISSUER", ""))
        self.local_mail = not self.values.get("MAIL_SENDER")
        self.local_providers = tuple(
            provider
            for provider, setting in (("dyte", "DYTE_API_BASE_URL"), ("realtimekit", "REALTIMEKIT_API_BASE_URL"))
            if _is_loopback(self.values.get(setting, ""))
        )

    @property
    def local_room(self) -> bool:
        """New meetings go to the stand-in, so the SPA joins them in its local room."""
        return (self.values.get("VIDEO_PROVIDER") or "dyte") in self.local_providers

    @property
    def spa_url(self) -> str:
        return f"http://localhost:{self.web_port}"

    @property
    def spa_origins(self) -> list[str]:
        return [f"http://localhost:{self.web_port}", f"http://127.0.0.1:{self.web_port}"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}/api"

    @property
    def issuer_url(self) -> str:
        return f"https://localhost:{self.issuer_port}"

    @property
    def provider_url(self) -> str:
        return f"http://127.0.0.1:{self.provider_port}"

    @property
    def mail_url(self) -> str:
        return f"https://localhost:{self.mail_port}"

    def environment(self) -> dict[str, str]:
        """The settings the stack decides, for the app and every helper process (over local.settings.json)."""
        env = {
            "APP_BASE_URL": self.spa_url,
            "REQUESTS_CA_BUNDLE": str(self.tls.trust),
            "PYTHONUNBUFFERED": "1",
        }
        if self.local_issuer:
            env["AUTH_ISSUER"] = self.issuer_url + "/{tid}/v2.0"
            env["AUTH_JWKS_URI"] = self.issuer_url + "/discovery/v2.0/keys"
        if "dyte" in self.local_providers:
            env["DYTE_API_BASE_URL"] = f"{self.provider_url}/v2"
            env["WEBHOOK_PUBLIC_KEY_URL"] = f"{self.provider_url}/.well-known/webhooks.json"
        if "realtimekit" in self.local_providers:
            env["REALTIMEKIT_API_BASE_URL"] = f"{self.provider_url}/client/v4"
            env["REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL"] = f"{self.provider_url}/realtimekit/.well-known/webhooks.json"
        if self.local_mail:
            env.update(LOCAL_MAIL)
            env["MAIL_AUTHORITY_HOST"] = self.mail_url
            env["GRAPH_BASE_URL"] = f"{self.mail_url}/v1.0"
        return env

    def spa_config(self) -> dict[str, object]:
        """The SPA's /config.json (shape: web/src/config.ts): sign-in, the API, the local room and mailbox."""
        values = {**self.values, **self.environment()}
        scope = os.environ.get("MEETINGS_API_SCOPE") or (
            f"api://{values['AUTH_CLIENT_ID']}/{values.get('AUTH_REQUIRED_SCOPE') or 'access_as_user'}"
        )
        if self.local_issuer:
            from dev.issuer import SPA_CLIENT_ID

            others = [t for t in values.get("AUTH_ALLOWED_TENANTS", "").split(",") if t.strip()]
            tenant = "organizations" if set(others) - {values["AUTH_TENANT_ID"]} else values["AUTH_TENANT_ID"]
            auth = {
                "authority": f"{self.issuer_url}/{tenant}/v2.0",
                "clientId": SPA_CLIENT_ID,
                "knownAuthorities": [f"localhost:{self.issuer_port}"],
                "protocolMode": "OIDC",
            }
        else:  # Entra ID; by default one registration is both SPA and API, as infra/ creates it
            auth = {
                "authority": f"https://login.microsoftonline.com/{values['AUTH_TENANT_ID']}",
                "clientId": os.environ.get("MEETINGS_SPA_CLIENT_ID") or values["AUTH_CLIENT_ID"],
                "knownAuthorities": [],
                "protocolMode": "AAD",
            }
        return {
            **auth,
            "apiBaseUrl": self.api_url,
            "scopes": [scope],
            "localRoom": {"baseUrl": f"{self.provider_url}/__room"} if self.local_room else None,
            "mailboxUrl": f"{self.mail_url}/mailbox" if self.local_mail else None,
        }


def _is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK


def _port(url: str, default: int) -> int:
    parts = urlsplit(url)
    return parts.port or default if parts.hostname in LOOPBACK else default


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def settings_file(path: Path) -> Path:
    """local.settings.json, created from the example when missing, its old plain-HTTP issuer URLs updated."""
    if not path.exists():
        shutil.copy(ROOT / "local.settings.json.example", path)
        print(f"  created {path.name} from local.settings.json.example")
        return path
    document = json.loads(path.read_text())
    values = document.get("Values") or {}
    if all(values.get(name) == old for name, old in _OLD_ISSUER.items()):
        example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
        for name in _OLD_ISSUER:
            values[name] = example[name]
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"  {path.name}: the local issuer serves HTTPS now; AUTH_ISSUER and AUTH_JWKS_URI updated")
    return path


def plan(args: argparse.Namespace) -> Plan:
    path = settings_file(Path(args.settings))
    values = read_values(local_settings=path)
    host_section = json.loads(path.read_text()).get("Host", {})
    web_port = args.web_port or _port(values.get("APP_BASE_URL", ""), 5173)
    origins = [o.strip() for o in str(host_section.get("CORS", "")).split(",") if o.strip()]
    spa = [f"http://localhost:{web_port}", f"http://127.0.0.1:{web_port}"]
    return Plan(
        values=values,
        cors=list(dict.fromkeys([*origins, *spa])),
        app_port=args.app_port or int(host_section.get("LocalHttpPort", 7071)),
        issuer_port=args.issuer_port or _port(values.get("AUTH_JWKS_URI", ""), 7072),
        provider_port=args.provider_port or _port(values.get("DYTE_API_BASE_URL", ""), 7073),
        mail_port=args.mail_port or 7074,
        web_port=web_port,
        tls=LocalTls(TLS_DIRECTORY),
    )


# Running it


class Stack:
    """The processes of the stack, started in order and stopped in reverse."""

    def __init__(self, plan: Plan, env: dict[str, str]):
        self.plan = plan
        self.env = env
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.azurite: Azurite | None = None

    def spawn(self, name: str, command: list[str], quiet: bool = False, cwd: Path = ROOT) -> subprocess.Popen:
        output = subprocess.DEVNULL if quiet else None
        process = subprocess.Popen(command, cwd=cwd, env=self.env, stdout=output, start_new_session=True)
        self.processes.append((name, process))
        return process

    def python(self, name: str, module_args: list[str], quiet: bool = True) -> subprocess.Popen:
        return self.spawn(name, [sys.executable, "-m", *module_args], quiet)

    def wait_for_port(self, port: int, process: subprocess.Popen, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check(process, name)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"{name} did not start listening on port {port}")

    def wait_for_url(self, url: str, process: subprocess.Popen, name: str, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check(process, name)
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2, verify=str(self.plan.tls.trust)).status_code < 500:
                    return
            time.sleep(0.2)
        raise SystemExit(f"{name} did not answer {url} within {timeout:.0f} s")

    @staticmethod
    def check(process: subprocess.Popen, name: str) -> None:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with code {process.returncode}; see its output above")

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            _stop(process)
        if self.azurite is not None:
            self.azurite.stop()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def web_setup(no_web: bool) -> bool:
    """npm ci in web/ when its lock file changed; False when there is no SPA to serve."""
    if no_web:
        print("  SPA: skipped (--no-web)")
        return False
    if not (WEB / "package.json").exists():
        print("  SPA: web/ is not here yet; skipping it (the API, issuer, room and mailbox run without it)")
        return False
    installed = WEB / "node_modules" / ".package-lock.json"
    lock = WEB / "package-lock.json"
    if not installed.exists() or (lock.exists() and lock.stat().st_mtime > installed.stat().st_mtime):
        print("  SPA: installing its npm packages (npm ci in web/; the first time takes a minute or two)", flush=True)
        started = time.monotonic()
        subprocess.run(["npm", "--prefix", str(WEB), "ci", "--no-audit", "--no-fund", "--loglevel=error"], check=True)
        print(f"  SPA: npm packages installed in {time.monotonic() - started:.0f} s")
    return True


def register_webhooks(stack: Stack) -> list[str]:
    url = f"http://127.0.0.1:{stack.plan.app_port}/api/webhooks/dyte"
    for provider in stack.plan.local_providers:
        command = [sys.executable, "-m", "shared.events", "register-webhook", "--url", url, "--provider", provider]
        result = subprocess.run(command, cwd=ROOT, env=stack.env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"registering the {provider} webhook failed: {result.stderr.strip() or result.stdout}")
    return list(stack.plan.local_providers)


def run(stack: Stack, with_web: bool, config_path: Path) -> int:
    plan = stack.plan
    defaults = (10000, 10001, 10002)
    stack.azurite = Azurite(*defaults) if all(_free(port) for port in defaults) else Azurite()
    stack.azurite.start()
    if (stack.azurite.blob_port, stack.azurite.queue_port, stack.azurite.table_port) != defaults:
        stack.env["AzureWebJobsStorage"] = stack.azurite.connection_string
    _step(f"Azurite: tables on {stack.azurite.table_port}, queues on {stack.azurite.queue_port} (in memory)")

    # The three stand-ins start side by side; the app needs them all.
    tls = ["--tls-cert", str(plan.tls.certificate), "--hostname", "localhost"]
    started = []
    if plan.local_issuer:
        # The SPA may sign in from any origin the app allows (Host.CORS and the SPA's own).
        origins = [argument for origin in plan.cors for argument in ("--redirect-origin", origin)]
        issuer = stack.python("issuer", ["dev.issuer", "serve", "--port", str(plan.issuer_port), *tls, *origins])
        started.append(("token issuer", plan.issuer_port, issuer))
    if plan.local_providers:
        provider = stack.python("provider stand-in", ["dev.provider", "--port", str(plan.provider_port)])
        started.append(("provider stand-in", plan.provider_port, provider))
    if plan.local_mail:
        graph = stack.python(
            "Graph stand-in", ["dev.graph", "--port", str(plan.mail_port), *tls, "--ca", str(plan.tls.ca)]
        )
        started.append(("Graph stand-in", plan.mail_port, graph))
    for name, port, process in started:
        stack.wait_for_port(port, process, name)
    if plan.local_issuer:
        _step(f"token issuer: {plan.issuer_url} (OpenID Connect, HTTPS with the local CA)")
    if plan.local_providers:
        _step(f"provider stand-in: {plan.provider_url} (Dyte at /v2, RealtimeKit at /client/v4, room at /__room)")
    if plan.local_mail:
        _step(f"Graph stand-in: {plan.mail_url} (mail on; the local mailbox is {plan.mail_url}/mailbox)")

    cors = ",".join(plan.cors)
    if shutil.which("func") and os.environ.get("MEETINGS_USE_FUNC") == "1":
        app_name = "func start"
        app = stack.spawn(app_name, ["func", "start", "--port", str(plan.app_port), "--cors", cors])
        timeout = 120.0
    else:
        app_name = "app"
        app = stack.python(app_name, ["dev.host", "--port", str(plan.app_port), "--cors", cors], quiet=False)
        timeout = 60.0
    stack.wait_for_url(f"{plan.api_url}/health", app, "the app", timeout)
    _step(f"app: {plan.api_url} (CORS: {cors})")

    registered = register_webhooks(stack)
    if registered:
        _step(f"webhooks: {' and '.join(registered)} deliver to {plan.api_url}/webhooks/dyte")

    if config_path != SPA_CONFIG or WEB.is_dir():  # never a web/ of its own in a clone without the SPA
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(plan.spa_config(), indent=2) + "\n")
        _step(f"SPA config: {_relative(config_path)}")
    if with_web:
        web = stack.spawn(
            "SPA", ["npm", "--prefix", str(WEB), "run", "dev", "--", "--port", str(plan.web_port), "--strictPort"]
        )
        stack.wait_for_url(f"{plan.spa_url}/", web, "the SPA's dev server", timeout=180.0)
        _step(f"SPA: {plan.spa_url}")
    _summary(plan, with_web)

    # Core Tools schedules the timers itself; the dev host does not.
    timers = None if app_name == "func start" else Timers(plan.api_url.removesuffix("/api"))
    while all(process.poll() is None for _, process in stack.processes):
        if timers is not None:
            timers.tick()
        time.sleep(0.5)
    stopped = next(name for name, process in stack.processes if process.poll() is not None)
    print(f"{stopped} stopped; shutting the stack down", file=sys.stderr)
    return 1


class Timers:
    """The dev host schedules no timer: run the app's sweeps on their schedule here, as Azure would, so work
    that failed is retried locally too."""

    def __init__(self, base_url: str):
        self._base_url = base_url
        self._every = {"sweep_pending": 60.0, "sweep_webhook_events": 300.0}
        self._due = {name: time.monotonic() + every for name, every in self._every.items()}

    def tick(self) -> None:
        now = time.monotonic()
        for name, due in self._due.items():
            if now >= due:
                self._due[name] = now + self._every[name]
                with contextlib.suppress(requests.RequestException):
                    requests.post(f"{self._base_url}/admin/functions/{name}", json={"input": ""}, timeout=5)


def _step(text: str) -> None:
    print(f"  ✓ {text}", flush=True)


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)


def _summary(plan: Plan, with_web: bool) -> None:
    lines = ["", "Ready."]
    if with_web:
        lines.append(f"  Open {plan.spa_url} and sign in as a suggested user (alice@, bob@contoso.test).")
    else:
        lines.append(f"  The SPA is not served; its config is written for {plan.spa_url}.")
    if plan.local_mail:
        lines.append(f"  Invitations sent: {plan.mail_url}/mailbox")
    if plan.local_issuer:
        lines.append(f"  Browser warns about {plan.issuer_url}? Trust {_relative(plan.tls.ca)} (README).")
    lines += [
        "  Or from a shell:",
        f"    curl -s {plan.api_url}/health",
        "    TOKEN=$(.venv/bin/python -m dev.issuer token --email alice@contoso.test)",
        f'    curl -s -H "Authorization: Bearer $TOKEN" {plan.api_url}/me',
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.stack", description="The whole local stack (make run).")
    parser.add_argument("--settings", default=str(ROOT / "local.settings.json"), help="the local settings file")
    parser.add_argument("--no-web", action="store_true", help="do not install or serve the SPA (web/)")
    parser.add_argument("--spa-config", default=str(SPA_CONFIG), help="where to write the SPA's config.json")
    for part in ("app", "issuer", "provider", "mail", "web"):
        parser.add_argument(f"--{part}-port", type=int, help=f"the {part}'s port (default from local.settings.json)")
    args = parser.parse_args(argv)
    # Both explicitly: a shell starting this in the background leaves SIGINT ignored otherwise.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    stack = None
    try:
        the_plan = plan(args)
        print(f"Starting the local stack; the SPA will be on {the_plan.spa_url}", flush=True)
        if local_tls(the_plan.tls.directory)[1]:
            print(f"  made a local certificate authority, {_relative(the_plan.tls.ca)}: trust it once (README)")
        taken = [
            (name, port)
            for name, port, wanted in (
                ("app", the_plan.app_port, True),
                ("issuer", the_plan.issuer_port, the_plan.local_issuer),
                ("provider stand-in", the_plan.provider_port, bool(the_plan.local_providers)),
                ("Graph stand-in", the_plan.mail_port, the_plan.local_mail),
                ("SPA", the_plan.web_port, not args.no_web and (WEB / "package.json").exists()),
            )
            if wanted and not _free(port)
        ]
        if taken:
            names = ", ".join(f"{port} ({name})" for name, port in taken)
            raise SystemExit(f"ports taken: {names}; stop what uses them, or change local.settings.json")
        with_web = web_setup(args.no_web)
        stack = Stack(the_plan, {**os.environ, **the_plan.environment()})
        return run(stack, with_web, Path(args.spa_config))
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as error:
        print(f"{' '.join(error.cmd[:4])} failed with code {error.returncode}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # Azurite's start-up failure, with its last lines
        print(error, file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if stack is not None:
            print("\nStopping…", flush=True)
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
