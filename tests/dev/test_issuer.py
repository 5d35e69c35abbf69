"""The local issuer's OpenID Connect flow over real HTTPS, as MSAL.js drives it, with a plain HTTP client.

The issuer serves TLS with a certificate of a test CA for `localhost`; the client trusts that CA only
(`trust_env=False`, so no REQUESTS_CA_BUNDLE of the machine gets in). The last test hands a token
from the flow to the app on the dev host, which verifies it through the issuer's JWKS over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import ssl
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
import trustme

from dev.harness import CLIENT_ID, SPA_ORIGIN, TENANT, start_app
from dev.issuer import FABRIKAM, SPA_CLIENT_ID, Issuer, user_object_id

REDIRECT_URI = f"{SPA_ORIGIN}/"
API_SCOPE = f"api://{CLIENT_ID}/access_as_user"
SCOPES = f"{API_SCOPE} openid profile offline_access"


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("issuer-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def https_issuer(ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    with Issuer(tls=context, hostname="localhost").start() as running:
        yield running


@pytest.fixture
def browser(ca_file):
    """A cookie-keeping client that trusts the test CA only, and never follows redirects by itself."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_file
    yield session
    session.close()


class Forms(HTMLParser):
    """The forms of a page: each a dict of its inputs, plus the names of its submit buttons."""

    def __init__(self, text: str):
        super().__init__()
        self.forms: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"fields": {}, "buttons": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][attrs.get("name")] = attrs.get("value", "")
        elif tag == "button" and self.forms and attrs.get("name"):
            self.forms[-1]["buttons"].append((attrs["name"], attrs.get("value", "")))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_url(issuer: Issuer, challenge: str, tenant: str = TENANT, **overrides: str) -> str:
    params = {
        "client_id": SPA_CLIENT_ID,
        "scope": SCOPES,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "response_mode": "fragment",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "client_info": "1",
        "client-request-id": "11111111-2222-4333-8444-555555555555",
        "x-client-SKU": "msal.js.browser",
        **overrides,
    }
    return f"{issuer.url}/{tenant}/oauth2/v2.0/authorize?{urlencode({k: v for k, v in params.items() if v})}"


def response_params(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    return {name: values[0] for name, values in parse_qs(parts.fragment or parts.query).items()}


def sign_in(browser, issuer: Issuer, challenge: str, authority: str = TENANT, **choice: str) -> dict[str, str]:
    """Open the sign-in page, post its form with `choice` (account=..., or name/email/tenant), follow back."""
    page = browser.get(authorize_url(issuer, challenge, authority), allow_redirects=False)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    forms = Forms(page.text).forms
    form = next(f for f in forms if ("account" in choice) == any(name == "account" for name, _ in f["buttons"]))
    answer = browser.post(page.url, data={**form["fields"], **choice}, allow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"].startswith(REDIRECT_URI + "#")
    return response_params(answer.headers["Location"])


def redeem(browser, issuer: Issuer, code: str, verifier: str, tenant: str = TENANT, **overrides: str):
    form = {
        "client_id": SPA_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPES,
        "code": code,
        "code_verifier": verifier,
        "grant_type": "authorization_code",
        "client_info": "1",
        **overrides,
    }
    headers = {"Origin": SPA_ORIGIN, "X-AnchorMailbox": "Oid:x@y"}
    return browser.post(
        f"{issuer.url}/{tenant}/oauth2/v2.0/token?client-request-id=abc",
        data={k: v for k, v in form.items() if v is not None},
        headers=headers,
    )


def claims(issuer: Issuer, browser, token: str, audience: str) -> dict:
    jwks = browser.get(issuer.jwks_uri).json()
    (key,) = [jwt.PyJWK(entry) for entry in jwks["keys"] if entry["kid"] == jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience)


def test_metadata_names_every_endpoint_on_the_authority_origin_with_cors(https_issuer, browser):
    response = browser.get(f"{https_issuer.authority_url()}/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    metadata = response.json()
    base = f"https://localhost:{urlsplit(https_issuer.url).port}"
    assert metadata["issuer"] == f"{base}/{TENANT}/v2.0"
    assert metadata["authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/authorize"
    assert metadata["token_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/token"
    assert metadata["end_session_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/logout"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert browser.get(metadata["jwks_uri"]).headers["Access-Control-Allow-Origin"] == "*"
    organizations = browser.get(f"{base}/organizations/v2.0/.well-known/openid-configuration").json()
    assert organizations["issuer"] == f"{base}/{{tenantid}}/v2.0"  # as Entra ID's multi-tenant metadata says
    assert browser.get(f"{base}/consumers/v2.0/.well-known/openid-configuration").status_code == 400


def test_authorization_code_with_pkce_gives_entra_shaped_tokens(https_issuer, browser):
    verifier, challenge = pkce()
    answer = sign_in(browser, https_issuer, challenge, account="alice@contoso.test")
    assert answer["state"] == "state-123"
    client_info = json.loads(base64.urlsafe_b64decode(answer["client_info"] + "=="))
    assert client_info == {"uid": user_object_id(TENANT, "alice@contoso.test"), "utid": TENANT}

    response = redeem(browser, https_issuer, answer["code"], verifier)
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == API_SCOPE and body["expires_in"] == 3600
    access = claims(https_issuer, browser, body["access_token"], CLIENT_ID)
    assert access["iss"] == https_issuer.issuer_template.replace("{tid}", TENANT)
    assert (access["scp"], access["tid"], access["azp"], access["ver"]) == (
        "access_as_user",
        TENANT,
        SPA_CLIENT_ID,
        "2.0",
    )
    assert access["oid"] == user_object_id(TENANT, "alice@contoso.test")
    assert (access["preferred_username"], access["name"]) == ("alice@contoso.test", "Alice Example")
    identity = claims(https_issuer, browser, body["id_token"], SPA_CLIENT_ID)
    assert identity["nonce"] == "nonce-456"
    assert identity["oid"] == access["oid"] and identity["iss"] == access["iss"]
    assert body["client_info"] == answer["client_info"]
    assert body["refresh_token"] and body["refresh_token_expires_in"] <= 24 * 3600


def test_a_code_is_single_use_and_its_replay_revokes_what_it_gave(https_issuer, browser):
    verifier, challenge = pkce()
    code = sign_in(browser, https_issuer, challenge, account="bob@contoso.test")["code"]
    first = redeem(browser, https_issuer, code, verifier)
    assert first.status_code == 200
    replay = redeem(browser, https_issuer, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant" and replay.json()["error_codes"] == [54005]
    refresh = refresh_with(browser, https_issuer, first.json()["refresh_token"])
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_a_wrong_verifier_or_redirect_uri_is_refused_and_leaves_the_code_usable(https_issuer, browser):
    verifier, challenge = pkce()
    code = sign_in(browser, https_issuer, challenge, account="carol@contoso.test")["code"]
    wrong = redeem(browser, https_issuer, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "code_verifier" in wrong.json()["error_description"]
    missing = redeem(browser, https_issuer, code, None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    elsewhere = redeem(browser, https_issuer, code, verifier, redirect_uri=f"{SPA_ORIGIN}/elsewhere")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    assert redeem(browser, https_issuer, code, verifier).status_code == 200


def test_the_spa_client_redeems_only_cross_origin_and_form_encoded(https_issuer, browser):
    verifier, challenge = pkce()
    code = sign_in(browser, https_issuer, challenge, account="alice@contoso.test")["code"]
    form = {"client_id": SPA_CLIENT_ID, "redirect_uri": REDIRECT_URI, "code": code, "code_verifier": verifier}
    form["grant_type"] = "authorization_code"
    token_url = f"{https_issuer.url}/{TENANT}/oauth2/v2.0/token"
    no_origin = browser.post(token_url, data=form)
    assert no_origin.status_code == 400 and no_origin.json()["error_codes"] == [9002327]
    as_json = browser.post(token_url, json=form, headers={"Origin": SPA_ORIGIN})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    other_client = browser.post(token_url, data={**form, "client_id": CLIENT_ID}, headers={"Origin": SPA_ORIGIN})
    assert other_client.status_code == 400 and other_client.json()["error"] == "unauthorized_client"
    assert browser.post(token_url, data=form, headers={"Origin": SPA_ORIGIN}).status_code == 200


def test_the_token_endpoint_answers_msal_s_preflight(https_issuer, browser):
    response = browser.options(
        f"{https_issuer.url}/{TENANT}/oauth2/v2.0/token",
        headers={
            "Origin": SPA_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-anchormailbox",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "x-anchormailbox" in response.headers["Access-Control-Allow-Headers"].lower()


def refresh_with(browser, issuer: Issuer, refresh_token: str, scope: str = SCOPES):
    form = {"client_id": SPA_CLIENT_ID, "grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope}
    return browser.post(f"{issuer.url}/{TENANT}/oauth2/v2.0/token", data=form, headers={"Origin": SPA_ORIGIN})


def test_refresh_gives_new_tokens_for_the_same_user(https_issuer, browser):
    verifier, challenge = pkce()
    code = sign_in(browser, https_issuer, challenge, name="Erin Example", email="erin@contoso.test")["code"]
    first = redeem(browser, https_issuer, code, verifier).json()
    refreshed = refresh_with(browser, https_issuer, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    access = claims(https_issuer, browser, body["access_token"], CLIENT_ID)
    assert (access["name"], access["preferred_username"]) == ("Erin Example", "erin@contoso.test")
    assert access["oid"] == user_object_id(TENANT, "erin@contoso.test")
    assert "nonce" not in claims(https_issuer, browser, body["id_token"], SPA_CLIENT_ID)
    assert body["refresh_token"] != first["refresh_token"]
    assert refresh_with(browser, https_issuer, body["refresh_token"]).status_code == 200
    tampered = first["refresh_token"][:-4] + ("AAAA" if not first["refresh_token"].endswith("AAAA") else "BBBB")
    assert refresh_with(browser, https_issuer, tampered).json()["error"] == "invalid_grant"
    unknown_scope = refresh_with(browser, https_issuer, body["refresh_token"], f"api://{CLIENT_ID}/admin openid")
    assert unknown_scope.json()["error"] == "invalid_scope"
    # Nothing the app would take for an access token: refresh tokens are not RS256.
    assert jwt.get_unverified_header(body["refresh_token"])["alg"] == "HS256"


def test_pkce_s256_is_required_and_errors_go_back_to_the_client(https_issuer, browser):
    _, challenge = pkce()
    for overrides, error in (
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid api://someone-else/access_as_user"}, "invalid_scope"),
    ):
        response = browser.get(authorize_url(https_issuer, challenge, **overrides), allow_redirects=False)
        assert response.status_code == 302, overrides
        answer = response_params(response.headers["Location"])
        assert (answer["error"], answer["state"]) == (error, "state-123"), overrides
    query = authorize_url(https_issuer, challenge, response_mode="query", code_challenge="")
    location = browser.get(query, allow_redirects=False).headers["Location"]
    assert location.startswith(REDIRECT_URI + "?error=invalid_request")


def test_unknown_clients_and_redirect_uris_get_an_error_page_not_a_redirect(https_issuer, browser):
    _, challenge = pkce()
    for overrides in (
        {"redirect_uri": "https://attacker.example/"},
        {"redirect_uri": "http://localhost:5174/"},
        {"client_id": "00000000-0000-0000-0000-000000000000"},
    ):
        response = browser.get(authorize_url(https_issuer, challenge, **overrides), allow_redirects=False)
        assert response.status_code == 400, overrides
        assert "Location" not in response.headers
        assert "AADSTS" in response.text


def test_the_sign_in_form_checks_its_input_accessibly(https_issuer, browser):
    _, challenge = pkce()
    page = browser.get(authorize_url(https_issuer, challenge))
    assert re.search(r'<label for="email">', page.text) and re.search(r'<html lang="en">', page.text)
    assert "alice@contoso.test" in page.text and "dana@fabrikam.test" not in page.text  # other tenants' users
    (form,) = [f for f in Forms(page.text).forms if "email" in f["fields"]]
    answer = browser.post(page.url, data={**form["fields"], "email": "not-an-address"}, allow_redirects=False)
    assert answer.status_code == 400
    assert 'aria-invalid="true"' in answer.text and 'role="alert"' in answer.text
    cancel = browser.post(page.url, data={**form["fields"], "cancel": ""}, allow_redirects=False)
    assert response_params(cancel.headers["Location"])["error"] == "access_denied"


def test_organizations_lets_the_user_pick_a_tenant(https_issuer, browser):
    verifier, challenge = pkce()
    page = browser.get(authorize_url(https_issuer, challenge, tenant="organizations"))
    assert f'value="{FABRIKAM}"' in page.text and "dana@fabrikam.test" in page.text
    answer = sign_in(browser, https_issuer, challenge, "organizations", account="dana@fabrikam.test")
    token = redeem(browser, https_issuer, answer["code"], verifier, tenant="organizations").json()["access_token"]
    access = claims(https_issuer, browser, token, CLIENT_ID)
    assert access["tid"] == FABRIKAM and access["iss"] == https_issuer.issuer_template.replace("{tid}", FABRIKAM)
    verifier, challenge = pkce()
    typed = {"name": "Gus", "email": "gus@contoso.test", "tenant": TENANT}
    answer = sign_in(browser, https_issuer, challenge, "organizations", **typed)
    token = redeem(browser, https_issuer, answer["code"], verifier, tenant="organizations").json()["access_token"]
    assert claims(https_issuer, browser, token, CLIENT_ID)["tid"] == TENANT


def test_prompt_none_uses_the_session_and_sign_out_ends_it(https_issuer, browser):
    verifier, challenge = pkce()
    silent = browser.get(authorize_url(https_issuer, challenge, prompt="none"), allow_redirects=False)
    assert response_params(silent.headers["Location"])["error"] == "login_required"
    sign_in(browser, https_issuer, challenge, account="alice@contoso.test")
    silent = browser.get(authorize_url(https_issuer, challenge, prompt="none"), allow_redirects=False)
    code = response_params(silent.headers["Location"])["code"]
    token = redeem(browser, https_issuer, code, verifier).json()["access_token"]
    assert claims(https_issuer, browser, token, CLIENT_ID)["preferred_username"] == "alice@contoso.test"
    page = browser.get(authorize_url(https_issuer, challenge))
    assert "signed in here" in page.text  # the session's user comes first on the page

    logout = f"{https_issuer.url}/{TENANT}/oauth2/v2.0/logout"
    back = browser.get(logout, params={"post_logout_redirect_uri": REDIRECT_URI, "state": "s"}, allow_redirects=False)
    assert back.status_code == 302 and back.headers["Location"] == f"{REDIRECT_URI}?state=s"
    silent = browser.get(authorize_url(https_issuer, challenge, prompt="none"), allow_redirects=False)
    assert response_params(silent.headers["Location"])["error"] == "login_required"
    stranger = browser.get(logout, params={"post_logout_redirect_uri": "https://attacker.example/"})
    assert stranger.status_code == 200 and "signed out" in stranger.text


def test_the_app_accepts_a_token_from_the_flow(storage, provider, https_issuer, browser, ca_file):
    # The app fetches the JWKS over HTTPS, trusting the test CA through REQUESTS_CA_BUNDLE (dev/graph.py).
    app = start_app(storage, provider, https_issuer, "dyte", REQUESTS_CA_BUNDLE=ca_file)
    try:
        verifier, challenge = pkce()
        code = sign_in(browser, https_issuer, challenge, name="Frank Example", email="Frank@Contoso.test")["code"]
        token = redeem(browser, https_issuer, code, verifier).json()["access_token"]
        me = app.call("GET", "/me", token)
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "Frank Example" and me.json()["email"] == "frank@contoso.test"
        cli_token = https_issuer.token(audience=CLIENT_ID, tenant=TENANT, email="frank@contoso.test")
        assert app.call("GET", "/me", cli_token).json()["id"] == me.json()["id"]  # same oid per address
    finally:
        app.stop()
