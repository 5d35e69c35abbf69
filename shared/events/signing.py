"""Webhook signatures (contract section 5): RSA PKCS#1 v1.5 over SHA-256 of the raw body, base64 in a header.

`dyte-signature` is checked with Dyte's key, `rtk-signature` with RealtimeKit's; when that fails, with the
other provider's key too before refusing: during the migration, deliveries with Dyte's header names signed
with RealtimeKit's key were reported, and a 401 is never retried. Which key verified is what a delivery
records as its provider. Each key is the
configured PEM, or else fetched from its URL and cached for an hour. When a signature fails against
a fetched key, the key is fetched again once (the provider may have rotated it), at most once a
minute per provider, so forged deliveries cannot make us hammer the key URL. A key that cannot be
had is a 503, never a 401: RealtimeKit never retries a 4xx, and the delivery may be genuine.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared import problems
from shared.settings import Settings, SettingsError

log = logging.getLogger(__name__)

# Checked in this order; some RealtimeKit deliveries are reported to carry Dyte's header names.
SIGNATURE_HEADERS = (("realtimekit", "rtk-signature"), ("dyte", "dyte-signature"))
KEY_MAX_AGE = 3600.0
REFETCH_INTERVAL = 60.0
FAILURE_BACKOFF = 5.0
FETCH_TIMEOUT = (1.0, 1.5)  # the provider gives the whole delivery 3 s

Keys = tuple[rsa.RSAPublicKey, ...]


class BadSignature(problems.Problem):
    # Not problems.Unauthorized: that one challenges for a bearer token, which is not how webhooks authenticate.
    status, slug, title = 401, "unauthorized", "The webhook signature is missing or invalid"


class SigningKey:
    """One provider's webhook signing key(s): configured, or fetched and cached."""

    def __init__(
        self,
        provider: str,
        url: str,
        configured: Keys = (),
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.provider = provider
        self._url = url
        self._configured = bool(configured)
        self._keys: Keys = configured
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._fetched_at: float | None = None
        self._failed_at: float | None = None  # the last fetch failed at; None once one succeeds
        self._refetched_at: float | None = None

    def verify(self, body: bytes, signature: bytes, refetch: bool = True) -> bool:
        """Whether `signature` is the provider's over `body`; Unavailable when the key cannot be had.

        `refetch`: on failure, fetch the key again (at most once a minute) in case the provider rotated it.
        """
        keys = self._current()
        if _verifies(keys, body, signature):
            return True
        if self._configured or not refetch:
            return False
        fresh = self._refetch(keys)
        return fresh is not None and _verifies(fresh, body, signature)

    def _current(self) -> Keys:
        with self._lock:
            now = self._clock()
            if self._configured or (self._fetched_at is not None and now - self._fetched_at < KEY_MAX_AGE):
                return self._keys
            try:
                return self._fetch(now)
            except problems.Unavailable:
                if self._keys:
                    return self._keys  # an old key still verifies until the provider rotates it
                raise

    def _refetch(self, tried: Keys) -> Keys | None:
        """The key fetched again after a failed verification, or None when a refetch is not due."""
        with self._lock:
            if self._keys is not tried:
                return self._keys  # another request refetched meanwhile
            now = self._clock()
            if self._refetched_at is not None and now - self._refetched_at < REFETCH_INTERVAL:
                if self._failed_at is not None:
                    # The last fetch failed: the provider may have rotated, so this may be genuine.
                    raise _unavailable()
                return None
            self._refetched_at = now
            return self._fetch(now)

    def _fetch(self, now: float) -> Keys:
        if self._failed_at is not None and now - self._failed_at < FAILURE_BACKOFF:
            raise _unavailable()
        try:
            response = self._session.get(self._url, timeout=FETCH_TIMEOUT, allow_redirects=False)
            response.raise_for_status()
            keys = tuple(key for key in map(load_key, key_document_pems(response.json())) if key is not None)
            if not keys:
                raise ValueError("no RSA public key in the key document")
        except (requests.RequestException, ValueError) as error:
            self._failed_at = now
            log.warning("webhook key of %s: fetch failed: %s", self.provider, error.__class__.__name__)
            raise _unavailable() from None
        self._keys, self._fetched_at, self._failed_at = keys, now, None
        log.info("webhook key of %s: fetched %d key(s)", self.provider, len(keys))
        return keys


class SigningKeys:
    """Both providers' keys: which provider signed a delivery."""

    def __init__(self, keys: Mapping[str, SigningKey]):
        self._keys = dict(keys)

    @classmethod
    def from_settings(cls, settings: Settings, session: requests.Session | None = None) -> SigningKeys:
        """Every provider's key, whichever provider new meetings use: old meetings keep theirs.

        A configured PEM that does not load fails start-up, naming the setting.
        """
        session = session or requests.Session()
        sources = {
            "dyte": ("WEBHOOK_PUBLIC_KEY", settings.webhook_public_key, settings.webhook_public_key_url),
            "realtimekit": (
                "REALTIMEKIT_WEBHOOK_PUBLIC_KEY",
                settings.realtimekit_webhook_public_key,
                settings.realtimekit_webhook_public_key_url,
            ),
        }
        keys = {}
        for provider, (name, pem, url) in sources.items():
            configured: Keys = ()
            if pem:
                key = load_key(pem)
                if key is None:
                    raise SettingsError(f"{name}: not a PEM RSA public key")
                configured = (key,)
            keys[provider] = SigningKey(provider, url, configured, session)
        return cls(keys)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The provider whose key verifies a signature header over `body` (the header's own provider's key
        first, then the other's); BadSignature (401) or Unavailable (503)."""
        present, unavailable = False, None
        for named, header in SIGNATURE_HEADERS:
            value = headers.get(header)
            if value is None:
                continue
            present = True
            signature = decode_signature(value)
            if signature is None:
                continue
            # Every key as it is first, then the header's own provider's fetched again (at most once a minute,
            # for a rotation): a delivery signed with the other key must not use up that allowance.
            attempts = [(p, False) for p in sorted(self._keys, key=lambda candidate: candidate != named)]
            for provider, refetch in [*attempts, (named, True)]:
                try:
                    if self._keys[provider].verify(body, signature, refetch=refetch):
                        return provider
                except problems.Unavailable as error:
                    unavailable = error
        if unavailable is not None:
            raise unavailable
        if not present:
            raise BadSignature("The delivery carries no dyte-signature or rtk-signature header.")
        raise BadSignature("The delivery's signature does not verify.")


def decode_signature(value: str) -> bytes | None:
    try:
        signature = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return signature if 64 <= len(signature) <= 1024 else None  # RSA 512 to 8192 bits


def load_key(pem: str) -> rsa.RSAPublicKey | None:
    """An RSA public key from PEM text; app settings often carry the newlines as literal `\\n`."""
    try:
        key = serialization.load_pem_public_key(pem.replace("\\n", "\n").strip().encode("ascii"))
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


def key_document_pems(document: Any) -> list[str]:
    """Every PEM a key document holds. RealtimeKit answers `{"data": {"publicKey": PEM}}` (documented);
    Dyte's shape is undocumented, third-party code reads `data.signing_keys[0].public_key`."""
    found: list[str] = []
    scopes = [document]
    if isinstance(document, dict):
        scopes.append(document.get("data"))
    for scope in scopes:
        if not isinstance(scope, dict):
            continue
        entries = [scope]
        signing_keys = scope.get("signing_keys", scope.get("signingKeys"))
        if isinstance(signing_keys, list):
            entries += signing_keys
        for entry in entries:
            if isinstance(entry, str):
                found.append(entry)
            elif isinstance(entry, dict):
                found += [entry[name] for name in ("publicKey", "public_key") if isinstance(entry.get(name), str)]
    return found


def _unavailable() -> problems.Unavailable:
    return problems.Unavailable("The webhook signing key cannot be fetched; retry.", retry_after=FAILURE_BACKOFF)


def _verifies(keys: Keys, body: bytes, signature: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return True
    return False
