"""Token validation against a real issuer over HTTP, with real RS256 keys."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from dev.issuer import Issuer, key_id, new_key
from shared import problems
from shared.auth import Authenticator, user_id
from tests import support

OTHER_TENANT = "0b0b0b0b-1111-4222-8333-444444444444"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def issuer():
    with Issuer().start() as running:
        yield running


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def authenticator(issuer, clock):
    loaded = support.load(AUTH_ISSUER=issuer.issuer_template, AUTH_JWKS_URI=issuer.jwks_uri)
    return Authenticator(loaded, clock=clock)


def token(issuer, **claims):
    claims.setdefault("audience", support.CLIENT_ID)
    claims.setdefault("tenant", support.TENANT)
    claims.setdefault("email", "alice@contoso.test")
    return issuer.token(**claims)


def bearer(value):
    return f"Bearer {value}"


def test_valid_token_yields_the_caller(issuer, authenticator):
    caller = authenticator.authenticate(
        bearer(token(issuer, name="Alice Example", oid="11111111-2222-4333-8444-555555555555"))
    )
    assert caller.tenant_id == support.TENANT
    assert caller.object_id == "11111111-2222-4333-8444-555555555555"
    assert caller.name == "Alice Example"
    assert caller.email == "alice@contoso.test"
    assert caller.id == user_id(support.load().id_hash_key, support.TENANT, caller.object_id)
    assert len(caller.id) == 22


def assert_unauthorized(authenticator, header):
    with pytest.raises(problems.Unauthorized) as failure:
        authenticator.authenticate(header)
    assert failure.value.status == 401
    assert failure.value.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def forge(payload_changes, original):
    header, payload, signature = original.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(payload_changes)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{encoded}.{signature}"


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "tenant_not_allowed",
        "alg_none",
        "hs256_with_public_key",
        "tampered_payload",
        "unknown_key",
        "garbage",
        "missing_header",
        "basic_scheme",
        "empty_bearer",
        "no_oid",
        "oid_not_a_guid",
    ],
)
def test_bad_tokens_are_401(issuer, authenticator, case):
    now = time.time()
    good = token(issuer)
    headers = {
        "expired": bearer(token(issuer, now=now - 3600 - 301)),
        "not_yet_valid": bearer(token(issuer, claims={"nbf": int(now) + 400})),
        "wrong_audience": bearer(token(issuer, audience="99999999-0000-4000-8000-000000000000")),
        "wrong_issuer": bearer(
            token(issuer, claims={"iss": f"https://login.microsoftonline.com/{support.TENANT}/v2.0"})
        ),
        "tenant_not_allowed": bearer(token(issuer, tenant=OTHER_TENANT)),
        "alg_none": bearer(jwt.encode(jwt.decode(good, options={"verify_signature": False}), None, algorithm="none")),
        "hs256_with_public_key": bearer(_hs256_with_public_key(issuer, good)),
        "tampered_payload": bearer(forge({"oid": "99999999-9999-4999-8999-999999999999"}, good)),
        "unknown_key": bearer(token(issuer, key=new_key())),
        "garbage": bearer("not.a.token"),
        "missing_header": None,
        "basic_scheme": "Basic " + base64.b64encode(b"alice:secret").decode(),
        "empty_bearer": "Bearer ",
        "no_oid": bearer(token(issuer, claims={"oid": None})),
        "oid_not_a_guid": bearer(token(issuer, oid="alice")),
    }
    assert_unauthorized(authenticator, headers[case])


def _hs256_with_public_key(issuer, good):
    claims = jwt.decode(good, options={"verify_signature": False})
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": key_id(issuer.key), "typ": "JWT"}
    segments = [base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=") for part in (header, claims)]
    signature = hmac.new(public_pem, ".".join(segments).encode(), hashlib.sha256).digest()
    return ".".join([*segments, base64.urlsafe_b64encode(signature).decode().rstrip("=")])


def test_small_clock_skew_is_tolerated(issuer, authenticator):
    caller = authenticator.authenticate(bearer(token(issuer, now=time.time() - 3600 - 120)))
    assert caller.tenant_id == support.TENANT


def test_valid_token_without_the_scope_is_403_insufficient_scope(issuer, authenticator):
    with pytest.raises(problems.InsufficientScope) as failure:
        authenticator.authenticate(bearer(token(issuer, scope="User.Read")))
    assert failure.value.status == 403
    assert 'error="insufficient_scope"' in failure.value.headers["WWW-Authenticate"]


def test_app_only_token_without_scp_is_403(issuer, authenticator):
    with pytest.raises(problems.InsufficientScope):
        authenticator.authenticate(bearer(token(issuer, claims={"scp": None, "roles": ["Meetings.ReadWrite"]})))


def test_scope_must_match_a_whole_scope_name(issuer, authenticator):
    with pytest.raises(problems.InsufficientScope):
        authenticator.authenticate(bearer(token(issuer, scope="access_as_user_not")))
    assert authenticator.authenticate(bearer(token(issuer, scope="User.Read access_as_user")))


def test_allowed_second_tenant_signs_in(issuer, clock):
    loaded = support.load(
        AUTH_ISSUER=issuer.issuer_template,
        AUTH_JWKS_URI=issuer.jwks_uri,
        AUTH_ALLOWED_TENANTS=f"{support.TENANT},{OTHER_TENANT}",
    )
    caller = Authenticator(loaded, clock=clock).authenticate(bearer(token(issuer, tenant=OTHER_TENANT)))
    assert caller.tenant_id == OTHER_TENANT


def test_rotation_a_new_key_is_accepted_once_published(issuer, authenticator, clock):
    authenticator.authenticate(bearer(token(issuer)))
    rotated = new_key()
    issuer.publish(rotated)
    clock.now += 61
    assert authenticator.authenticate(bearer(token(issuer, key=rotated))).tenant_id == support.TENANT


def test_unknown_kids_refetch_the_jwks_at_most_once_a_minute(issuer, authenticator, clock):
    authenticator.authenticate(bearer(token(issuer)))
    assert issuer.jwks_requests == 1
    for _ in range(20):
        assert_unauthorized(authenticator, bearer(token(issuer, key=new_key())))
    assert issuer.jwks_requests == 1
    clock.now += 60
    assert_unauthorized(authenticator, bearer(token(issuer, key=new_key())))
    assert issuer.jwks_requests == 2


def test_unreachable_jwks_is_503_not_401(issuer, authenticator):
    issuer.available = False
    with pytest.raises(problems.Unavailable) as failure:
        authenticator.authenticate(bearer(token(issuer)))
    assert failure.value.status == 503
    assert failure.value.headers["Retry-After"]


def test_keys_already_known_survive_an_outage(issuer, authenticator, clock):
    authenticator.authenticate(bearer(token(issuer)))
    issuer.available = False
    clock.now += 25 * 3600
    assert authenticator.authenticate(bearer(token(issuer))).tenant_id == support.TENANT


def test_unverified_email_claim_is_not_a_verified_address(issuer, authenticator):
    forged = token(issuer, claims={"preferred_username": "not-an-address", "email": "victim@fabrikam.test"})
    assert authenticator.authenticate(bearer(forged)).verified_emails == ()
    unverified = token(issuer, claims={"email": "victim@fabrikam.test", "xms_edov": False})
    assert authenticator.authenticate(bearer(unverified)).verified_emails == ("alice@contoso.test",)


def test_email_claim_counts_when_xms_edov_is_true(issuer, authenticator):
    claims = {"preferred_username": "Bob@Contoso.test", "email": "Bob.Work@Fabrikam.test", "xms_edov": True}
    caller = authenticator.authenticate(bearer(token(issuer, claims=claims)))
    assert caller.verified_emails == ("bob@contoso.test", "bob.work@fabrikam.test")
    assert caller.email == "bob@contoso.test"
