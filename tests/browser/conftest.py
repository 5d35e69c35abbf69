"""The SPA in a real browser against the real local stack.

Debian's Chromium (`/usr/bin/chromium`, installed by `make setup`) driven by Playwright's Python
client: the tests start the stack in this process the way `tests/api` does (Azurite, the app on the
dev host, the provider stand-in with its local room, the OIDC issuer over HTTPS with a throw-away CA),
serve the built SPA (`web/dist`) with its `/config.json`, and sign people in through MSAL.js and the
issuer's sign-in page. axe-core (from `web/node_modules`) checks every screen. When a test fails, a
screenshot of each person's page goes to `tests/browser/output/<test name>/`.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_api  # make setup installs tests/browser/requirements.txt
import pytest
import requests

from dev import harness
from dev.loopback import LoopbackServer

expect = playwright_api.expect

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = Path(__file__).resolve().parent / "output"
CHROMIUM = Path("/usr/bin/chromium")
# As the machine's notes give them: no background traffic to hosts this closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}


def _missing_parts() -> list[str]:
    """What of the local stack the SPA needs is not in this tree yet (each lands from its own branch)."""
    from dev import issuer as issuer_module

    missing = []
    if not hasattr(issuer_module.Issuer, "authority_url"):
        missing.append("the issuer's OIDC endpoints (dev.issuer)")
    if not (ROOT / "dev" / "provider" / "room.py").exists():
        missing.append("the provider stand-in's local room (dev/provider/room.py)")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (make setup installs Debian's chromium)")
    if not (DIST / "index.html").exists():
        missing.append("the built SPA (npm --prefix web run build)")
    if not AXE.exists():
        missing.append("axe-core (npm --prefix web ci)")
    return missing


class SpaServer(LoopbackServer):
    """`web/dist` with `/config.json`, and index.html for every other path (the SPA routes them)."""

    def __init__(self, port: int, config: dict[str, Any]):
        body = json.dumps(config).encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/config.json":
                    return self._send(200, "application/json", body)
                file = (DIST / path.lstrip("/")).resolve()
                if not file.is_file() or DIST not in file.parents:
                    file = DIST / "index.html"
                self._send(200, TYPES.get(file.suffix, "application/octet-stream"), file.read_bytes())

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

        super().__init__(("127.0.0.1", port), Handler)


@dataclass
class Stack:
    spa_url: str
    app: harness.App
    issuer: Any
    provider: Any

    def token(self, email: str) -> str:
        """An access token for `email`, as the SPA would get one: for driving the API beside the browser."""
        return self.app.token(email)


@pytest.fixture(scope="session")
def stack(storage, tmp_path_factory) -> Iterator[Stack]:
    missing = _missing_parts()
    # A failure, not a skip: in `make test` these parts are always there, and a silent skip would hide it.
    assert not missing, "browser tests need " + "; ".join(missing) + " (make setup web-check prepares them)"
    import trustme

    from dev.issuer import SPA_CLIENT_ID, Issuer
    from dev.provider import ProviderStandIn
    from shared.events.__main__ import register_webhook
    from shared.provider import ProviderClient

    # MSAL.js accepts only an https authority: the issuer gets a certificate from a CA made for this
    # run; the app trusts that CA for the JWKS, the browser context ignores certificate errors.
    ca = trustme.CA()
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(tls)

    spa_port = harness.free_port()
    spa_origin = f"http://localhost:{spa_port}"
    issuer = Issuer(tls=tls, hostname="localhost", redirect_origins=(spa_origin,)).start()
    provider = ProviderStandIn().start()
    # This run's SPA has a port of its own: the app allows its origin.
    app = harness.start_app(storage, provider, issuer, "dyte", cors=spa_origin, REQUESTS_CA_BUNDLE=str(ca_file))
    dyte = ProviderClient.for_dyte(provider.dyte_credentials(), requests.Session())
    register_webhook(dyte, f"{app.url}/api/webhooks/dyte")
    config = {
        "authority": issuer.authority_url(),
        "clientId": SPA_CLIENT_ID,
        "apiBaseUrl": f"{app.url}/api",
        "scopes": [f"api://{harness.CLIENT_ID}/access_as_user"],
        "knownAuthorities": [issuer.url.removeprefix("https://")],
        "localRoom": {"baseUrl": f"{provider.url}/__room"},
        "mailboxUrl": None,
    }
    spa = SpaServer(spa_port, config).serve_in_background()
    try:
        yield Stack(spa_origin, app, issuer, provider)
    finally:
        spa.stop()
        app.stop()
        provider.stop()
        issuer.stop()


@pytest.fixture(scope="session", autouse=True)
def fresh_output() -> None:
    """Screenshots of this run's failures only."""
    shutil.rmtree(OUTPUT, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(stack) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        # Playwright adds --headless and a fresh --user-data-dir of its own for every launch.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@dataclass
class Person:
    """Someone at their own browser (a context of their own: storage, cookies, time zone)."""

    key: str
    name: str
    email: str
    stack: Stack
    page: Any
    checked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, path: str = "/") -> None:
        self.page.goto(self.stack.spa_url + path)

    def sign_in(self, path: str = "/") -> None:
        """Through the SPA's button, MSAL's redirect, and the issuer's sign-in page."""
        self.open(path)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(re.escape(self.stack.issuer.url) + "/.*"))
        self.page.get_by_label("Display name").fill(self.name)
        self.page.get_by_label("Email address").fill(self.email)
        self.page.get_by_role("button", name="Sign in", exact=True).click()
        expect(self.page.get_by_role("button", name="Sign out")).to_be_visible()

    def heading(self, text: str | re.Pattern[str]) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_text(text)

    def check_accessibility(self, screen: str) -> None:
        """axe-core over the page as it is: no serious or critical violation."""
        if not self.page.evaluate("() => Boolean(window.axe)"):
            self.page.add_script_tag(path=str(AXE))
        violations = self.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
            }))"""
        )
        serious = [violation for violation in violations if violation["impact"] in ("serious", "critical")]
        assert not serious, f"accessibility of {screen}: {json.dumps(serious, indent=1)}"
        self.checked.append(screen)


PEOPLE = {
    # name, time zone: three zones, so schedules show in the meeting's zone and the viewer's.
    "alice": ("Alice Example", "Europe/Berlin"),
    "bob": ("Bob Example", "America/New_York"),
    "carol": ("Carol Example", "Asia/Kolkata"),
    "erin": ("Erin Example", "Europe/London"),
}


def _person(key: str, stack: Stack, browser: Any) -> Iterator[Person]:
    name, zone = PEOPLE[key]
    context = browser.new_context(
        ignore_https_errors=True, locale="en-GB", timezone_id=zone, accept_downloads=True, base_url=stack.spa_url
    )
    context.set_default_timeout(15_000)
    # Fresh addresses per test: each test starts from people with no meetings.
    email = f"{key}.{uuid.uuid4().hex[:8]}@contoso.test"
    page = context.new_page()
    person = Person(key, name, email, stack, page)
    page.on("pageerror", lambda error: person.console.append(f"page error: {error.stack}"))
    page.on("console", lambda message: message.type in ("error", "warning") and person.console.append(message.text))
    yield person
    context.close()


@pytest.fixture
def alice(stack, browser) -> Iterator[Person]:
    yield from _person("alice", stack, browser)


@pytest.fixture
def bob(stack, browser) -> Iterator[Person]:
    yield from _person("bob", stack, browser)


@pytest.fixture
def carol(stack, browser) -> Iterator[Person]:
    yield from _person("carol", stack, browser)


@pytest.fixture
def erin(stack, browser) -> Iterator[Person]:
    yield from _person("erin", stack, browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        folder = OUTPUT / re.sub(r"[^\w.-]+", "_", item.name)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        people = [value for value in item.funcargs.values() if isinstance(value, Person)]
        for person in people:
            if not person.page.is_closed():
                person.page.screenshot(path=str(folder / f"{person.key}.png"), full_page=True)
            (folder / f"{person.key}-console.txt").write_text("\n".join(person.console))
        report.sections.append(("screenshots and browser consoles", str(folder)))
    return report
