"""The video provider client: Dyte v2 and Cloudflare RealtimeKit behind one class.

RealtimeKit serves Dyte's v2 API under another prefix and auth scheme, so one client speaks to
both; where Cloudflare's own schemas differ from Dyte's document (the kick body, fields an answer
may leave out), the client follows each provider's. Failures become the contract's problems: 502
when the provider refuses (our credentials or request are wrong), 503 when it is unavailable or
rate limits us, 504 when it does not answer in time. Neither the provider's raw answer nor any
credential ever reaches a problem's detail.

Retries stay within `retry_budget` seconds in total and only where a repeat is harmless: reads,
PATCHes that set absolute values, token refresh and participant deletion, any request the provider
refused with 429 (it was not processed), and any request that never left (connection refused).
Creating a meeting or a participant is never repeated after it may have reached the provider.
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from shared.problems import ProviderRejected, ProviderTimeout, ProviderUnavailable
from shared.settings import DyteCredentials, RealtimeKitCredentials, Settings

logger = logging.getLogger(__name__)

PER_PAGE = 50
MAX_PAGES = 200  # a guard against a provider whose paging never reports the end
MAX_BACKOFF = 4.0
WEBHOOK_FIELDS = frozenset({"name", "url", "events", "enabled"})


class ParticipantGone(Exception):
    """The provider no longer knows this participant: add it again."""


@dataclass(frozen=True)
class ProviderMeeting:
    id: str
    status: str


@dataclass(frozen=True)
class ProviderParticipant:
    id: str
    token: str | None
    preset_name: str
    custom_participant_id: str


@dataclass(frozen=True)
class ProviderPreset:
    id: str
    name: str
    permissions: Mapping[str, Any] | None  # None when the answer did not carry them (a list item)


@dataclass(frozen=True)
class ProviderRecording:
    id: str
    download_url: str | None
    download_url_expiry: str | None


@dataclass(frozen=True)
class ProviderWebhook:
    id: str
    name: str
    url: str
    events: tuple[str, ...]
    enabled: bool


class ProviderClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        authorization: str,
        session: requests.Session,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 5.0,
        retry_budget: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if name not in ("dyte", "realtimekit"):
            raise ValueError(f"unknown provider {name!r}")
        self.name = name
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": authorization, "Accept": "application/json"}
        self._session = session
        self._timeout = (connect_timeout, read_timeout)
        self._retry_budget = retry_budget
        self._sleep = sleep
        self._clock = clock

    def once(self) -> ProviderClient:
        """This client without retries: for clean-ups whose retries belong to a queued job."""
        clone = copy.copy(self)
        clone._retry_budget = 0.0
        return clone

    def __repr__(self) -> str:
        return f"ProviderClient({self.name!r}, {self._base_url!r})"

    @classmethod
    def for_dyte(cls, credentials: DyteCredentials, session: requests.Session, **options: Any) -> ProviderClient:
        basic = base64.b64encode(f"{credentials.org_id}:{credentials.api_key}".encode()).decode("ascii")
        return cls("dyte", credentials.base_url, f"Basic {basic}", session, **options)

    @classmethod
    def for_realtimekit(
        cls, credentials: RealtimeKitCredentials, session: requests.Session, **options: Any
    ) -> ProviderClient:
        base = f"{credentials.base_url}/accounts/{_seg(credentials.account_id)}/realtime/kit/{_seg(credentials.app_id)}"
        return cls("realtimekit", base, f"Bearer {credentials.api_token}", session, **options)

    # Meetings

    def create_meeting(self, title: str, *, record_on_start: bool = False) -> ProviderMeeting:
        answer = self._call("POST", "/meetings", body={"title": title, "record_on_start": record_on_start})
        return _meeting(_data(answer))

    def get_meeting(self, meeting_id: str) -> ProviderMeeting:
        return _meeting(_data(self._call("GET", f"/meetings/{_seg(meeting_id)}", retry=True)))

    def set_meeting_status(self, meeting_id: str, status: str) -> ProviderMeeting:
        if status not in ("ACTIVE", "INACTIVE"):
            raise ValueError(f"status must be ACTIVE or INACTIVE, got {status!r}")
        inactive = status == "INACTIVE"
        answer = self._call(
            "PATCH", f"/meetings/{_seg(meeting_id)}", body={"status": status}, retry=True, absent_ok=inactive
        )
        if answer is None:
            # The provider has no such meeting: nobody can join it, which is all INACTIVE asks.
            return ProviderMeeting(id=meeting_id, status=status)
        if not isinstance(answer.get("data"), dict):
            # Cloudflare's schema makes `data` optional here; the status asked for is what was set.
            return ProviderMeeting(id=meeting_id, status=status)
        return _meeting(_data(answer))

    # Participants

    def add_participant(
        self, meeting_id: str, *, custom_participant_id: str, name: str | None, preset_name: str
    ) -> ProviderParticipant:
        body = {"custom_participant_id": custom_participant_id, "preset_name": preset_name}
        if name is not None:
            body["name"] = name
        answer = self._call("POST", f"/meetings/{_seg(meeting_id)}/participants", body=body)
        return _participant(_data(answer), with_token=True)

    def find_participant(self, meeting_id: str, custom_participant_id: str) -> ProviderParticipant | None:
        """The meeting's participant with this custom id (the first, were there several), without token."""
        for found in self._participants(meeting_id):
            if found.custom_participant_id == custom_participant_id:
                return found
        return None

    def participants(self, meeting_id: str) -> list[ProviderParticipant]:
        """Every participant of the meeting, without tokens (all pages)."""
        return list(self._participants(meeting_id))

    def _participants(self, meeting_id: str) -> Iterator[ProviderParticipant]:
        for page_no in range(1, MAX_PAGES + 1):
            params = {"page_no": page_no, "per_page": PER_PAGE}
            answer = self._call("GET", f"/meetings/{_seg(meeting_id)}/participants", params=params, retry=True)
            items, paging = _page(answer)
            for item in items:
                if isinstance(item, dict):
                    yield _participant(item, with_token=False)
            if not items or not paging or _number(paging, "end_offset") >= _number(paging, "total_count"):
                return

    def get_participant(self, meeting_id: str, participant_id: str) -> ProviderParticipant | None:
        answer = self._call("GET", _participant_path(meeting_id, participant_id), retry=True, absent_ok=True)
        return None if answer is None else _participant(_data(answer), with_token=False)

    def set_participant_preset(
        self, meeting_id: str, participant_id: str, preset_name: str
    ) -> ProviderParticipant | None:
        """Change the preset; the participant with a token for the new preset, or None when the answer left
        them out (Cloudflare's schema makes `data` optional: the change is made all the same)."""
        path = _participant_path(meeting_id, participant_id)
        answer = self._call("PATCH", path, body={"preset_name": preset_name}, retry=True, absent_ok=True)
        if answer is None:
            raise ParticipantGone(participant_id)
        if answer.get("data") is None:
            return None
        return _participant(_data(answer), with_token=True)

    def delete_participant(self, meeting_id: str, participant_id: str) -> None:
        """Delete; a participant that is already gone counts as deleted."""
        self._call("DELETE", _participant_path(meeting_id, participant_id), retry=True, absent_ok=True)

    def refresh_token(self, meeting_id: str, participant_id: str) -> str:
        path = f"{_participant_path(meeting_id, participant_id)}/token"
        answer = self._call("POST", path, retry=True, absent_ok=True)
        if answer is None:
            raise ParticipantGone(participant_id)
        return _text(_data(answer), "token")

    # Live session

    def active_session(self, meeting_id: str) -> dict[str, Any] | None:
        """The live session's details, or None when nothing is live (the provider's 404)."""
        answer = self._call("GET", f"/meetings/{_seg(meeting_id)}/active-session", retry=True, absent_ok=True)
        if answer is None:
            return None
        data = answer.get("data")
        return data if isinstance(data, dict) else {}  # live; Cloudflare's schema makes the details optional

    def kick_all(self, meeting_id: str) -> int | None:
        """End the live session for everyone; the number kicked (0 when nothing was live), None when the
        provider did not say (Cloudflare's schema makes the count optional)."""
        answer = self._call("POST", f"/meetings/{_seg(meeting_id)}/active-session/kick-all", absent_ok=True)
        if answer is None:
            return 0
        data = answer.get("data")
        count = data.get("kicked_participants_count") if isinstance(data, dict) else None
        return int(count) if isinstance(count, int | float) and not isinstance(count, bool) else None

    def kick(self, meeting_id: str, *, custom_participant_ids: list[str]) -> int | None:
        """Remove these people from the live session; the number kicked (0 when none was live), None when
        the provider did not say."""
        if not custom_participant_ids:
            return 0
        body: dict[str, list[str]] = {"custom_participant_ids": list(custom_participant_ids)}
        if self.name == "realtimekit":
            body["participant_ids"] = []  # Cloudflare's schema requires both lists; Dyte's takes either
        answer = self._call("POST", f"/meetings/{_seg(meeting_id)}/active-session/kick", body=body, absent_ok=True)
        if answer is None:
            return 0
        data = answer.get("data")
        kicked = data.get("participants") if isinstance(data, dict) else None
        return len(kicked) if isinstance(kicked, list) else None

    # Presets

    def list_presets(self) -> list[ProviderPreset]:
        """Every preset of the organization (or app), without permissions."""
        presets = []
        for page_no in range(1, MAX_PAGES + 1):
            params = {"page_no": page_no, "per_page": PER_PAGE}
            items, paging = _page(self._call("GET", "/presets", params=params, retry=True))
            presets += [_preset(item) for item in items]
            if not items or not paging or _number(paging, "end_offset") >= _number(paging, "total_count"):
                break
        return presets

    def get_preset(self, preset_id: str) -> ProviderPreset | None:
        """The preset with its permissions, or None when there is none with that id."""
        answer = self._call("GET", f"/presets/{_seg(preset_id)}", retry=True, absent_ok=True)
        return None if answer is None else _preset(_data(answer))

    def create_preset(self, body: Mapping[str, Any]) -> ProviderPreset:
        """Create a preset from a full `POST /presets` body (see `shared.presets.body`)."""
        return _preset(_data(self._call("POST", "/presets", body=dict(body))))

    # Recordings

    def recording(self, recording_id: str) -> ProviderRecording | None:
        """The recording with a freshly signed download link; None when the provider no longer has it."""
        answer = self._call("GET", f"/recordings/{_seg(recording_id)}", retry=True, absent_ok=True)
        if answer is None:
            return None
        data = _data(answer)
        url, expiry = data.get("download_url"), data.get("download_url_expiry")
        return ProviderRecording(
            id=_text(data, "id"),
            download_url=url if isinstance(url, str) and url else None,
            download_url_expiry=expiry if isinstance(expiry, str) and expiry else None,
        )

    # Webhooks

    def list_webhooks(self) -> list[ProviderWebhook]:
        data = self._call("GET", "/webhooks", retry=True).get("data")
        if not isinstance(data, list):
            raise _malformed("data")
        return [_webhook(item) for item in data]

    def create_webhook(self, name: str, url: str, events: list[str]) -> ProviderWebhook:
        answer = self._call("POST", "/webhooks", body={"name": name, "url": url, "events": list(events)})
        return _webhook(_data(answer))

    def update_webhook(self, webhook_id: str, **fields: Any) -> ProviderWebhook:
        unknown = set(fields) - WEBHOOK_FIELDS
        if unknown:
            raise TypeError(f"update_webhook() got unknown fields: {', '.join(sorted(unknown))}")
        if "events" in fields:
            fields["events"] = list(fields["events"])
        answer = self._call("PATCH", f"/webhooks/{_seg(webhook_id)}", body=fields, retry=True)
        return _webhook(_data(answer))

    # The wire

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        retry: bool = False,
        absent_ok: bool = False,
    ) -> dict[str, Any] | None:
        """The provider's JSON answer to one request, retried where safe; None for a 404 when `absent_ok`."""
        started, attempt = self._clock(), 0
        while True:
            attempt += 1
            wait = min(MAX_BACKOFF, 0.5 * 2 ** (attempt - 1))
            try:
                response = self._session.request(
                    method,
                    self._base_url + path,
                    json=body,
                    params=params,
                    headers=self._headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.ReadTimeout:
                failure, repeatable = "timeout", retry
            except requests.RequestException as error:
                failure, repeatable = f"unreachable ({error.__class__.__name__})", retry or _never_sent(error)
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return self._interpret(method, path, response, absent_ok)
                # A 429 was refused before any processing; a 5xx may have been processed halfway.
                failure, repeatable = f"HTTP {status}: {_error_message(response)}", retry or status == 429
                wait = _retry_after(response) or wait
            if not repeatable or self._clock() - started + wait > self._retry_budget:
                logger.warning("video provider %s: %s %s failed: %s; giving up", self.name, method, path, failure)
                if failure == "timeout":
                    raise ProviderTimeout("The video provider did not answer in time.")
                raise ProviderUnavailable("The video provider is unavailable; try again later.", retry_after=wait)
            logger.info(
                "video provider %s: %s %s failed: %s; retrying in %.2f s", self.name, method, path, failure, wait
            )
            self._sleep(wait)

    def _interpret(self, method: str, path: str, response: requests.Response, absent_ok: bool) -> dict[str, Any] | None:
        status = response.status_code
        if 200 <= status < 300:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if isinstance(answer, dict) and answer.get("success") is not False:
                return answer
            logger.warning("video provider %s: %s %s answered %d without success", self.name, method, path, status)
            raise ProviderRejected("The video provider gave an answer this backend does not understand.")
        if status == 404 and absent_ok:
            return None
        message = _error_message(response)
        if status in (401, 403):
            logger.error(
                "video provider %s rejected our credentials: HTTP %d on %s %s: %s",
                self.name,
                status,
                method,
                path,
                message,
            )
            raise ProviderRejected("The video provider rejected our credentials.")
        logger.warning("video provider %s: %s %s answered HTTP %d: %s", self.name, method, path, status, message)
        if "no preset found" in message.lower():
            raise ProviderRejected("The video provider does not know the preset configured for this role.")
        raise ProviderRejected(f"The video provider rejected the request (HTTP {status}).")


def clients_from_settings(settings: Settings) -> dict[str, ProviderClient]:
    """A client per configured provider, sharing one connection pool sized to the worker's threads."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=_thread_count())
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    clients = {}
    if settings.dyte is not None:
        clients["dyte"] = ProviderClient.for_dyte(settings.dyte, session)
    if settings.realtimekit is not None:
        clients["realtimekit"] = ProviderClient.for_realtimekit(settings.realtimekit, session)
    return clients


def _thread_count() -> int:
    """The Python worker's thread pool size (the Functions default when unset): one connection each."""
    try:
        count = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", ""))
    except ValueError:
        return 16
    return count if count > 0 else 16


def _seg(value: str) -> str:
    return quote(value, safe="")


def _participant_path(meeting_id: str, participant_id: str) -> str:
    return f"/meetings/{_seg(meeting_id)}/participants/{_seg(participant_id)}"


def _never_sent(error: requests.RequestException) -> bool:
    """Whether the request surely never reached the provider, so that even a POST may go again."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_message(response: requests.Response) -> str:
    """The first message of any documented error shape, for the log only (never for a problem)."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    candidates = []
    if isinstance(answer, dict):
        error, errors = answer.get("error"), answer.get("errors")
        candidates = [
            error.get("message") if isinstance(error, dict) else error,
            answer.get("message"),
            errors[0].get("message") if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None,
        ]
    message = next((c for c in candidates if isinstance(c, str) and c), None) or response.text
    return " ".join(message.split())[:300]


def _malformed(name: str) -> ProviderRejected:
    logger.warning("video provider answer lacks a valid %r", name)
    return ProviderRejected("The video provider gave an answer this backend does not understand.")


def _data(answer: Mapping[str, Any] | None) -> dict[str, Any]:
    data = answer.get("data") if answer else None
    if not isinstance(data, dict):
        raise _malformed("data")
    return data


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _malformed(name)
    return value


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _malformed(name)
    return value


def _page(answer: Mapping[str, Any]) -> tuple[list[Any], Mapping[str, Any] | None]:
    """Items and paging of a list answer: `data` is the list, or holds it (as `/sessions` does)."""
    data = answer.get("data")
    paging = answer.get("paging")
    if isinstance(data, dict):
        paging = paging or data.get("paging")
        data = next((value for value in data.values() if isinstance(value, list)), None)
    if not isinstance(data, list):
        raise _malformed("data")
    return data, paging if isinstance(paging, dict) else None


def _meeting(data: Mapping[str, Any]) -> ProviderMeeting:
    return ProviderMeeting(id=_text(data, "id"), status=data.get("status") or "ACTIVE")


def _participant(data: Mapping[str, Any], *, with_token: bool) -> ProviderParticipant:
    return ProviderParticipant(
        id=_text(data, "id"),
        token=_text(data, "token") if with_token else None,
        preset_name=_text(data, "preset_name"),
        custom_participant_id=_text(data, "custom_participant_id"),
    )


def _preset(data: Any) -> ProviderPreset:
    if not isinstance(data, dict):
        raise _malformed("preset")
    permissions = data.get("permissions")
    return ProviderPreset(
        id=_text(data, "id"),
        name=_text(data, "name"),
        permissions=permissions if isinstance(permissions, dict) else None,
    )


def _webhook(data: Any) -> ProviderWebhook:
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise _malformed("webhook")
    return ProviderWebhook(
        id=_text(data, "id"),
        name=_text(data, "name"),
        url=_text(data, "url"),
        events=tuple(data["events"]),
        enabled=data.get("enabled") is not False,
    )
