"""A validated token is remembered until the moment the full check would refuse it, and no longer."""

import time

import pytest

from dev.issuer import Issuer
from shared.auth import CLOCK_SKEW_SECONDS, Authenticator
from tests import support


class WallClock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def issuer():
    with Issuer().start() as running:
        yield running


def test_a_token_is_remembered_until_exp_plus_the_skew_and_then_checked_again(issuer):
    wall = WallClock()
    settings = support.load(AUTH_ISSUER=issuer.issuer_template, AUTH_JWKS_URI=issuer.jwks_uri)
    authenticator = Authenticator(settings, wall_clock=wall)
    token = issuer.token(audience=support.CLIENT_ID, tenant=support.TENANT, email="a@contoso.test", lifetime=60)
    caller = authenticator.authenticate(f"Bearer {token}")
    (remembered,) = authenticator._valid.values()
    bound = remembered[1]
    assert bound == pytest.approx(wall.now + 60 + CLOCK_SKEW_SECONDS, abs=2)
    wall.now = bound - 0.5
    issuer.stop()  # a remembered token needs no key set
    assert authenticator.authenticate(f"Bearer {token}") == caller
    wall.now = bound + 0.5
    # Past the bound the full check runs again; with the issuer gone it cannot even fetch keys for a new kid,
    # but this kid's key is still in the key set, so the answer is the full check's, not the memory's.
    assert authenticator.authenticate(f"Bearer {token}") == caller
    assert authenticator._valid[next(iter(authenticator._valid))][1] > bound - 1  # remembered anew


def test_a_remembered_token_skips_the_key_set(issuer):
    settings = support.load(AUTH_ISSUER=issuer.issuer_template, AUTH_JWKS_URI=issuer.jwks_uri)
    authenticator = Authenticator(settings)
    token = issuer.token(audience=support.CLIENT_ID, tenant=support.TENANT, email="b@contoso.test")
    caller = authenticator.authenticate(f"Bearer {token}")
    issuer.stop()  # no JWKS, no issuer at all: a remembered token needs neither
    assert authenticator.authenticate(f"Bearer {token}") == caller


def test_the_memory_is_bounded(issuer):
    settings = support.load(AUTH_ISSUER=issuer.issuer_template, AUTH_JWKS_URI=issuer.jwks_uri)
    authenticator = Authenticator(settings, remembered=3)
    tokens = [
        issuer.token(audience=support.CLIENT_ID, tenant=support.TENANT, email=f"u{n}@contoso.test") for n in range(5)
    ]
    for token in tokens:
        authenticator.authenticate(f"Bearer {token}")
    assert len(authenticator._valid) == 3
