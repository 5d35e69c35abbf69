"""Microsoft Graph `sendMail` as the app itself (client credentials, `Mail.Send`), through msal.

Trust: the Graph and token calls use a `requests.Session` left at requests' defaults, so in Azure
they verify against the default CA bundle. Tests of a running app point it at a test CA with
`REQUESTS_CA_BUNDLE` in that process's environment (see dev/graph.py); nothing here can turn
verification off. Graph's 429 and 5xx are retried here while its Retry-After is short; a longer
throttle is `Throttled`, so the caller can put the message back for when Graph asks.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from shared.settings import MailSettings

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 3
INLINE_WAIT_SECONDS = 10.0
TIMEOUT = (3.05, 30.0)
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class MailError(Exception):
    """Graph did not take the message; raised so that the queue retries it (and poisons it at last)."""


class Throttled(MailError):
    """Graph asked us to wait longer than is worth holding an invocation for."""

    def __init__(self, retry_after: float):
        super().__init__(f"Graph throttled sendMail for {retry_after:g} s")
        self.retry_after = retry_after


class Graph:
    """sendMail as the app itself (client credentials, `Mail.Send`); msal caches the token per process."""

    def __init__(
        self,
        settings: MailSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self._settings = settings
        self._session = session or _default_session()
        self._sleep = sleep or time.sleep
        graph = urlsplit(settings.graph_base_url)
        self._scopes = [f"{graph.scheme}://{graph.netloc}/.default"]
        self._application: Any = None
        self._lock = threading.Lock()

    def send(self, body: dict[str, Any]) -> None:
        url = f"{self._settings.graph_base_url}/users/{quote(self._settings.sender, safe='@')}/sendMail"
        for attempt in range(1, SEND_ATTEMPTS + 1):
            # A connection failure propagates: for an unreachable Graph the queue's retries are the back-off.
            response = self._session.post(
                url, json=body, headers={"Authorization": f"Bearer {self._token()}"}, timeout=TIMEOUT
            )
            status = response.status_code
            if 200 <= status < 300:
                return
            if status != 429 and status < 500:
                raise MailError(f"Graph refused sendMail: HTTP {status} {_graph_error_code(response)}")
            retry_after = _retry_after(response)
            wait = float(attempt) if retry_after is None else retry_after
            if attempt < SEND_ATTEMPTS and wait <= INLINE_WAIT_SECONDS:
                log.info("mail: Graph answered HTTP %d; retrying in %.1f s", status, wait)
                self._sleep(wait)
                continue
            if status == 429:
                raise Throttled(wait)
            raise MailError(f"Graph is unavailable: HTTP {status} {_graph_error_code(response)}")

    def _token(self) -> str:
        result = self._msal().acquire_token_for_client(scopes=self._scopes)
        if not result or "access_token" not in result:
            # The error code only: msal's description can quote the request.
            raise MailError(f"no Graph token: {(result or {}).get('error', 'no answer')}")
        return result["access_token"]

    def _msal(self) -> Any:
        with self._lock:
            if self._application is None:
                import msal  # imported here: only the sender needs it (cold start)

                settings = self._settings
                self._application = msal.ConfidentialClientApplication(
                    settings.client_id,
                    client_credential=_credential(settings),
                    authority=f"{settings.authority_host}/{settings.tenant_id}",
                    http_client=self._session,
                    # The authority is our own setting: no need for the public cloud's discovery
                    # endpoint to vouch for it (which it could not do for a sovereign cloud).
                    instance_discovery=False,
                )
            return self._application


def _credential(settings: MailSettings) -> str | dict[str, str]:
    if not settings.client_certificate:
        return settings.client_secret
    keys = _PEM_KEY.findall(settings.client_certificate)
    certificates = _PEM_CERTIFICATE.findall(settings.client_certificate)
    if not keys or not certificates:
        raise MailError("MAIL_CLIENT_CERTIFICATE must be PEM holding the private key and its certificate")
    # From the certificate msal computes its SHA-256 thumbprint (x5t#S256, PS256 assertions): the
    # SHA-1 `thumbprint` key is what msal deprecates.
    return {"private_key": keys[0], "public_certificate": "\n".join(certificates)}


class _Session(requests.Session):
    """requests' defaults, with a timeout on every call: msal passes none of its own to an http_client."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TIMEOUT
        return super().request(method, url, *args, **kwargs)


def _default_session() -> requests.Session:
    session = _Session()
    # One connection per worker thread (PYTHON_THREADPOOL_THREAD_COUNT, 16 by default).
    session.mount("https://", HTTPAdapter(pool_maxsize=16))
    return session


def _retry_after(response: requests.Response) -> float | None:
    """Graph's Retry-After, which it gives in seconds."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _graph_error_code(response: requests.Response) -> str:
    """Graph's error code, for the log (never its message, which may quote the recipient)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get("code", "")) if isinstance(error, dict) else ""
