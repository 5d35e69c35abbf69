"""`ProviderStandIn`: the HTTP server, its two API modes, faults, the request log, the admin API, the local
room (`/__room/...`) and recording files (`/__files/...`)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import jwt

from dev.loopback import LoopbackServer
from dev.provider import openapi, room, webhooks
from dev.provider.model import ApiError, Switches, Tenant
from shared import presets
from shared.settings import DEFAULT_PRESETS, DyteCredentials, RealtimeKitCredentials

MODES = ("dyte", "realtimekit")
_FILES = "/__files/recordings/"
_ROOM_ACTIONS = {"enter": "POST", "state": "GET", "leave": "POST", "admit": "POST"}
_RTK_PREFIX = re.compile(r"/client/v4/accounts/([^/]+)/realtime/kit/([^/]+)(/.*)?")
_KEY_PATHS = {"/.well-known/webhooks.json": "dyte", "/realtimekit/.well-known/webhooks.json": "realtimekit"}
# A token valid for another account or app is refused by Cloudflare's API gateway in its own envelope,
# before RealtimeKit sees the request; a bad token gets the 401 Cloudflare's RealtimeKit schemas document.
_UNAUTHORIZED = {"message": "Unauthorized"}
_GATEWAY_AUTH_ERROR = {
    "success": False,
    "errors": [{"code": 10000, "message": "Authentication error"}],
    "messages": [],
    "result": None,
}

_Handler = Callable[[Tenant, Mapping[str, str], dict[str, list[str]], Any], tuple[int, dict[str, Any]]]
_OPERATIONS: dict[str, _Handler] = {
    "create_meeting": lambda t, p, q, b: t.create_meeting(b),
    "get_meeting": lambda t, p, q, b: t.get_meeting(p["meeting_id"]),
    "update_meeting": lambda t, p, q, b: t.update_meeting(p["meeting_id"], b),
    "get_meeting_participants": lambda t, p, q, b: t.list_participants(p["meeting_id"], q),
    "add_participant": lambda t, p, q, b: t.add_participant(p["meeting_id"], b),
    "get_meeting_participant": lambda t, p, q, b: t.get_participant(p["meeting_id"], p["participant_id"]),
    "edit_participant": lambda t, p, q, b: t.edit_participant(p["meeting_id"], p["participant_id"], b),
    "delete_meeting_participant": lambda t, p, q, b: t.delete_participant(p["meeting_id"], p["participant_id"]),
    "regenerate_token": lambda t, p, q, b: t.regenerate_token(p["meeting_id"], p["participant_id"]),
    "GetActiveSession": lambda t, p, q, b: t.active_session(p["meeting_id"]),
    "KickPartcipants": lambda t, p, q, b: t.kick(p["meeting_id"], b),
    "KickAllParticipants": lambda t, p, q, b: t.kick_all(p["meeting_id"]),
    "get-presets": lambda t, p, q, b: t.list_presets(q),
    "post-presets": lambda t, p, q, b: t.create_preset(b),
    "get-presets-preset_id": lambda t, p, q, b: t.get_preset(p["preset_id"]),
    "delete-presets-preset_id": lambda t, p, q, b: t.delete_preset(p["preset_id"]),
    "get_one_recording": lambda t, p, q, b: t.get_recording(p["recording_id"]),
    "getAllWebhooks": lambda t, p, q, b: t.list_webhooks(),
    "addWebhook": lambda t, p, q, b: t.add_webhook(b),
    "getWebhook": lambda t, p, q, b: t.get_webhook(p["webhook_id"]),
    "replaceWebhook": lambda t, p, q, b: t.replace_webhook(p["webhook_id"], b),
    "editWebhook": lambda t, p, q, b: t.edit_webhook(p["webhook_id"], b),
    "deleteWebhook": lambda t, p, q, b: t.delete_webhook(p["webhook_id"]),
}


@dataclass
class Fault:
    """A misbehaviour for matching requests. `apply` says whether the request still takes effect."""

    method: str | None = None
    path: str | None = None  # a regular expression searched in the mode-relative path
    mode: str | None = None
    times: int | None = None  # None: until reset
    status: int | None = None
    retry_after: float | None = None
    delay: float | None = None
    drop: bool = False
    apply: bool = False
    # In-process only: called once the request took effect (with `apply`), before any answer is sent;
    # e.g. a test kills the app process here, "right after the step".
    then: Callable[[], None] | None = field(default=None, repr=False)
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.status is None and self.delay is None and not self.drop:
            raise ValueError("a fault needs a status, a delay or drop")
        if self.then is not None and not callable(self.then):
            raise ValueError("then must be callable")
        if self.status is not None:
            HTTPStatus(self.status)  # a ValueError for a status HTTP does not define
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        self._pattern = re.compile(self.path) if self.path else None

    def matches(self, mode: str, method: str, path: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and (self.mode is None or self.mode == mode)
            and (self.method is None or self.method.upper() == method)
            and (self._pattern is None or self._pattern.search(path) is not None)
        )


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    stream: Iterable[bytes] | None = None  # sent instead of `body`: `length` bytes in chunks
    length: int = 0

    @classmethod
    def json(cls, status: int, document: Any, headers: dict[str, str] | None = None) -> _Reply:
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


class ProviderStandIn:
    """An in-memory Dyte v2 API at `/v2` and RealtimeKit API at `/client/v4/accounts/.../realtime/kit/...`.

    `presets` names presets to seed besides each mode's defaults (mode -> role -> name, as the settings
    name them); `clock` gives recording links their time; webhooks the room causes are retried after
    `webhook_retry_delay` seconds.
    """

    def __init__(
        self,
        *,
        dyte_org_id: str = "local-org",
        dyte_api_key: str = "local-dyte-api-key",
        rtk_account_id: str = "local-account",
        rtk_app_id: str = "local-app",
        rtk_api_token: str = "local-realtimekit-api-token",  # noqa: S107 - the local settings' value, not a secret
        presets: Mapping[str, Mapping[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
        webhook_retry_delay: float = 1.0,
    ):
        self.dyte_org_id, self._dyte_api_key = dyte_org_id, dyte_api_key
        self.rtk_account_id, self.rtk_app_id, self._rtk_api_token = rtk_account_id, rtk_app_id, rtk_api_token
        self._presets = {mode: dict((presets or {}).get(mode, {})) for mode in MODES}
        self._clock = clock
        self._lock = threading.RLock()
        self._token_keys = {mode: webhooks.new_key() for mode in MODES}
        self._signing_keys = {mode: webhooks.new_key() for mode in MODES}
        self._file_secret = os.urandom(32)
        self._outbox = webhooks.Outbox(webhook_retry_delay)
        self.switches = Switches()
        self._tenants = self._new_tenants()
        self._faults: list[Fault] = []
        # In-process only: sees every API request first (mode, method, mode-relative path, query) and may
        # answer with a Fault for it; a test's fault injector counts the steps of an operation here.
        self.interceptor: Callable[[str, str, str, str], Fault | None] | None = None
        self._log: list[dict[str, Any]] = []
        self._wake = threading.Event()  # set by reset and stop, to cut pending delays short
        self._server: _Server | None = None

    # Life cycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        self._gates = openapi.gates()
        self._server = _Server((host, port), self).serve_in_background()
        self._outbox.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._wake.set()
        self._server.stop()
        self._server = None
        self._outbox.stop()

    def __enter__(self) -> Self:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def dyte_base_url(self) -> str:
        return f"{self.url}/v2"

    @property
    def realtimekit_base_url(self) -> str:
        return f"{self.url}/client/v4"

    def dyte_credentials(self) -> DyteCredentials:
        return DyteCredentials(org_id=self.dyte_org_id, api_key=self._dyte_api_key, base_url=self.dyte_base_url)

    def realtimekit_credentials(self) -> RealtimeKitCredentials:
        return RealtimeKitCredentials(
            account_id=self.rtk_account_id,
            app_id=self.rtk_app_id,
            api_token=self._rtk_api_token,
            base_url=self.realtimekit_base_url,
        )

    # Control surface (the admin API calls these too)

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    def reset(self) -> None:
        with self._lock:
            wake, self._wake = self._wake, threading.Event()
            wake.set()
            self.switches = Switches()
            self._tenants = self._new_tenants()
            self._faults.clear()
            self._log.clear()
            self._outbox.clear()

    def clear_faults(self) -> None:
        """Forget the faults, and nothing else (requests already delayed by one still answer late)."""
        with self._lock:
            self._faults.clear()

    def add_fault(self, **spec: Any) -> Fault:
        fault = Fault(**spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def snapshot(self, mode: str) -> dict[str, dict[str, Any]]:
        """The mode's meetings as the provider holds them: status, participants (id, custom id, preset) and
        the live session's peers, as participant id -> the preset they entered with (None when nothing is
        live). For checks against our tables."""
        with self._lock:
            return {
                meeting.id: {
                    "status": meeting.fields["status"],
                    "participants": [
                        {"id": p.id, "custom_participant_id": p.custom_participant_id, "preset_name": p.preset_name}
                        for p in meeting.participants.values()
                    ],
                    "live": None
                    if meeting.session is None
                    else {pid: peer.preset_name for pid, peer in sorted(meeting.session.live.items())},
                }
                for meeting in self._tenant(mode).meetings.values()
            }

    def signed_headers(self, mode: str, body: bytes) -> dict[str, str]:
        """The headers the provider sends a delivery of `body` with (signature, delivery and webhook ids), for
        handing a signed delivery to the receiver in-process, as `deliver` sends it over HTTP."""
        with self._lock:
            key = self._signing_keys[self._mode(mode)]
        prefix = webhooks.HEADER_PREFIX[mode]
        return {
            "Content-Type": "application/json",
            f"{prefix}-signature": webhooks.sign(key, body),
            f"{prefix}-uuid": str(uuid.uuid4()),
            f"{prefix}-webhook-id": str(uuid.uuid4()),
        }

    def set_switches(self, **values: Any) -> dict[str, Any]:
        with self._lock:
            self.switches.update(values)
            return asdict(self.switches)

    def token_check(self, token: str) -> dict[str, Any]:
        """Whether a participant token would still let its holder join."""
        for mode, key in self._token_keys.items():
            try:
                # `iat` may be a little ahead: see `Tenant._issue_token`.
                claims = jwt.decode(token, key.public_key(), algorithms=["RS256"], options={"verify_iat": False})
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                return {"valid": False, "reason": "expired"}
            except jwt.InvalidTokenError:
                return {"valid": False, "reason": "malformed"}
            with self._lock:
                return self._tenants[mode].check_token(claims, token)
        return {"valid": False, "reason": "not signed by this provider"}

    def start_session(
        self, mode: str, meeting_id: str, *, participant_ids: tuple[str, ...] = (), custom_participant_ids=()
    ) -> str:
        """People join the meeting's live session (started if none, past any waiting room, with the webhooks
        that sends); returns the session id."""
        with self._lock:
            session_id = self._tenant(mode).start_session(
                meeting_id, list(participant_ids), list(custom_participant_ids)
            )
            self._flush()
            return session_id

    def record(self, mode: str, meeting_id: str, session_id: str) -> dict[str, Any]:
        """A recording of the session, `recording_size_bytes` generated bytes, uploaded without a call in the room:
        its `recording.statusUpdate` UPLOADED payload, whose `downloadUrl` serves the file (for `deliver`)."""
        with self._lock:
            return self._tenant(mode).record(meeting_id, session_id)

    def recording_bytes(self, recording_id: str) -> Iterable[bytes]:
        """The whole file a recording's link serves, chunk by chunk (KeyError for a recording nobody has)."""
        with self._lock:
            held = [t.recordings[recording_id] for t in self._tenants.values() if recording_id in t.recordings]
        if not held:
            raise KeyError(recording_id)
        return room.content(held[0].id, held[0].file_size or 0)

    def sent_webhooks(self) -> list[dict[str, Any]]:
        """What the room's webhooks did so far: mode, event, url, webhook id, delivery id, status, attempts."""
        return self._outbox.log()

    def drain_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every webhook caused so far was delivered (or given up); whether that was in time."""
        return self._outbox.drain(timeout)

    def public_key_pem(self, mode: str) -> str:
        with self._lock:
            return webhooks.public_pem(self._signing_keys[self._mode(mode)])

    def rotate_key(self, mode: str) -> str:
        with self._lock:
            self._signing_keys[self._mode(mode)] = webhooks.new_key()
            return self.public_key_pem(mode)

    def deliver(
        self,
        mode: str,
        payload: dict[str, Any] | None = None,
        *,
        url: str | None = None,
        duplicate: int = 0,
        raw_body: str | None = None,
        header_names: str | None = None,
    ) -> list[dict[str, Any]]:
        """Sign and POST one event: to `url`, or to every enabled webhook subscribed to its event.

        `raw_body` sends exact text (e.g. not compact JSON); `duplicate` extra copies repeat the
        delivery with the same delivery id, as a provider's retry does; `header_names` sends it under the
        other mode's header names, signed with this mode's key (RealtimeKit deliveries were reported
        with Dyte's names during the migration).
        """
        if (payload is None) == (raw_body is None):
            raise ValueError("give exactly one of payload and raw_body")
        body = raw_body.encode("utf-8") if raw_body is not None else json.dumps(payload, separators=(",", ":")).encode()
        event = json.loads(body).get("event")
        with self._lock:
            hooks = list(self._tenant(mode).webhooks.values())
            key = self._signing_keys[mode]
        if url is not None:
            targets = [(url, next((hook.id for hook in hooks if hook.url == url), str(uuid.uuid4())))]
        else:
            targets = [(hook.url, hook.id) for hook in hooks if hook.enabled and event in hook.events]
        return webhooks.deliver(self._mode(header_names or mode), key, targets, body, 1 + duplicate)

    # Serving

    def _serve(self, method: str, target: str, headers: Mapping[str, str], raw_body: bytes) -> _Reply:
        split = urlsplit(target)
        if split.path.startswith("/__admin/"):
            return self._admin(method, split.path, raw_body)
        if split.path.startswith("/__room/"):
            return self._room(method, split.path, headers, raw_body)
        mode, relative, tenant_ids = self._locate(split.path)
        generation = self._wake  # a reset while this request is pending starts a new log without it
        file = split.path.startswith(_FILES) and method == "GET"
        if file:
            # A file takes the faults (and the log) of the mode holding its recording, else Dyte's.
            recording_id, relative, wanted = split.path.removeprefix(_FILES), split.path, headers.get("Range")
            with self._lock:
                mode = next((m for m, t in self._tenants.items() if recording_id in t.recordings), "dyte")
            reply = self._with_faults(
                mode, method, relative, lambda: self._file(recording_id, parse_qs(split.query), wanted)
            )
        elif mode is None:
            reply = _Reply.json(404, ApiError(404, f"No route for {method} {split.path}").body())
        else:
            query = parse_qs(split.query, keep_blank_values=True)
            reply = self._with_faults(
                mode,
                method,
                relative,
                lambda: self._answer(mode, method, relative, tenant_ids, query, headers, raw_body),
                split.query,
            )
        with self._lock:
            if generation is not self._wake:
                return reply
            self._log.append(
                {
                    "mode": mode,
                    "method": method,
                    "path": relative,
                    "query": split.query,
                    "body": _parsed(raw_body),
                    "status": None if reply.drop else reply.status,
                    # A file's answer depends on the range asked for (a resumed download).
                    **({"range": headers.get("Range")} if file else {}),
                }
            )
        return reply

    def _locate(self, path: str) -> tuple[str | None, str, tuple[str, str] | None]:
        if path in _KEY_PATHS:
            return _KEY_PATHS[path], "/.well-known/webhooks.json", None
        if path == "/v2" or path.startswith("/v2/"):
            return "dyte", path[3:] or "/", None
        match = _RTK_PREFIX.fullmatch(path)
        if match:
            return "realtimekit", match.group(3) or "/", (match.group(1), match.group(2))
        return None, path, None

    def _with_faults(self, mode: str, method: str, path: str, answer: Callable[[], _Reply], query: str = "") -> _Reply:
        interceptor = self.interceptor
        fault = interceptor(mode, method, path, query) if interceptor is not None else None
        with self._lock:
            if fault is None:
                fault = next((f for f in self._faults if f.matches(mode, method, path)), None)
                if fault is not None and fault.times is not None:
                    fault.times -= 1
            wake = self._wake
        if fault is None:
            return answer()
        if fault.delay and wake.wait(fault.delay):
            return _Reply(0, drop=True)  # reset or stop while waiting: the answer would go nowhere
        reply = answer() if fault.apply else None
        if fault.then is not None:
            fault.then()
        if fault.drop:
            return _Reply(0, drop=True)
        if fault.status is not None:
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            if fault.status == 429 and mode == "dyte":
                extra["x-envoy-ratelimited"] = "true"
            return _Reply.json(fault.status, ApiError(fault.status, HTTPStatus(fault.status).phrase).body(), extra)
        # A delay alone: the proxy in front gave up, as Envoy does, with its plain-text answer.
        return reply or _Reply(504, b"upstream request timeout", {"Content-Type": "text/plain"})

    def _answer(
        self,
        mode: str,
        method: str,
        path: str,
        tenant_ids: tuple[str, str] | None,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        raw_body: bytes,
    ) -> _Reply:
        if path == "/.well-known/webhooks.json":
            if method != "GET":
                return _Reply.json(404, ApiError(404, f"No route for {method} {path}").body())
            with self._lock:
                return _Reply.json(200, webhooks.key_document(mode, self._signing_keys[mode]))
        refused = self._authenticate(mode, path, tenant_ids, headers.get("Authorization", ""))
        if refused:
            return refused
        try:
            with self._lock:
                strict = self.switches.reject_unknown_fields
            operation, params, body = self._gates[mode].check(method, path, query, raw_body, strict)
            handler = _OPERATIONS.get(operation.operation_id)
            if handler is None:
                raise ApiError(501, f"{operation.operation_id} is documented but not implemented by this stand-in")
            with self._lock:
                try:
                    status, document = handler(self._tenants[mode], params, query, body)
                finally:
                    self._flush()
                minimal = self.switches.required_answer_fields_only
        except ApiError as error:
            return _Reply.json(error.status, error.body())
        schema = operation.answer_schemas.get(str(status))
        if minimal and schema is not None:
            document = openapi.required_only(schema, document)
        return _Reply.json(status, document)

    def _room(self, method: str, path: str, headers: Mapping[str, str], raw_body: bytes) -> _Reply:
        if method == "OPTIONS":
            return _Reply(204, headers=dict(room.CORS))
        action = path.removeprefix("/__room/").strip("/")
        if _ROOM_ACTIONS.get(action) != method:
            return _Reply.json(404, {"error": f"no room route {method} {path}"}, room.CORS)
        try:
            try:
                body = json.loads(raw_body) if raw_body.strip() else None
            except ValueError:
                raise room.RoomError(400, "the body is not JSON") from None
            with self._lock:
                tenant, meeting, participant = room.identify(
                    self._tenants, self._token_keys, headers.get("Authorization", "")
                )
                try:
                    answer = room.act(tenant, meeting, participant, action, body)
                finally:
                    self._flush()
        except room.RoomError as error:
            return _Reply.json(error.status, {"error": error.message}, room.CORS)
        return _Reply.json(200, answer, room.CORS)

    def _file(self, recording_id: str, query: Mapping[str, list[str]], ranged: str | None) -> _Reply:
        try:
            room.check_link(self._file_secret, recording_id, query, self._clock())
        except room.RoomError as error:
            return _Reply.json(error.status, {"error": error.message}, room.CORS)
        with self._lock:
            found = next(
                (t.recordings[recording_id] for t in self._tenants.values() if recording_id in t.recordings), None
            )
            rate, cut, wake = (
                self.switches.recording_bytes_per_second,
                self.switches.recording_cut_after_bytes,
                self._wake,
            )
        if found is None or found.status != "UPLOADED" or found.file_size is None:
            return _Reply.json(404, {"error": f"no recording {recording_id}"}, room.CORS)
        size = found.file_size
        try:
            wanted = room.byte_range(ranged, size)
        except room.RoomError as error:
            unsatisfiable = {**room.CORS, "Content-Range": f"bytes */{size}"}
            return _Reply.json(error.status, {"error": error.message}, unsatisfiable)
        first, last = wanted or (0, size - 1)
        headers = {
            **room.CORS,
            "Content-Type": "video/mp4",
            "Content-Disposition": f'attachment; filename="{found.output_file_name}"',
            "Accept-Ranges": "bytes",
        }
        if wanted is not None:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        stream = _paced(room.content(recording_id, size, first, last), rate, cut, wake)
        return _Reply(206 if wanted else 200, headers=headers, stream=stream, length=last - first + 1)

    def _flush(self) -> None:
        """Hand the webhooks the last call caused to the outbox, signed for each subscribed webhook."""
        for mode, tenant in self._tenants.items():
            payloads, tenant.outbox = tenant.outbox, []
            for payload in payloads:
                event = payload["event"]
                targets = [(h.url, h.id) for h in tenant.webhooks.values() if h.enabled and event in h.events]
                if targets:
                    body = json.dumps(payload, separators=(",", ":")).encode()
                    self._outbox.send(mode, self._signing_keys[mode], targets, body, event)

    def _link(self, recording_id: str) -> tuple[str, str]:
        expires = int(self._clock()) + self.switches.recording_link_ttl_seconds
        return room.link(self.url, self._file_secret, recording_id, expires)

    def _authenticate(
        self, mode: str, path: str, tenant_ids: tuple[str, str] | None, authorization: str
    ) -> _Reply | None:
        scheme, _, credentials = authorization.partition(" ")
        if mode == "realtimekit":
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credentials.encode(), self._rtk_api_token.encode()
            ):
                return _Reply.json(401, _UNAUTHORIZED)
            if tenant_ids != (self.rtk_account_id, self.rtk_app_id):
                return _Reply.json(403, _GATEWAY_AUTH_ERROR)
            return None
        expected = f"{self.dyte_org_id}:{self._dyte_api_key}".encode()
        try:
            given = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if scheme.lower() == "basic" and hmac.compare_digest(given, expected):
            return None
        # Dyte documents its webhook routes' 401 without the usual envelope.
        if path.startswith("/webhooks"):
            return _Reply.json(401, _UNAUTHORIZED)
        return _Reply.json(401, ApiError(401, "Unauthorized").body())

    def _admin(self, method: str, path: str, raw_body: bytes) -> _Reply:
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            parts = path.removeprefix("/__admin/").strip("/").split("/")
            match method, parts:
                case "GET", ["requests"]:
                    return _Reply.json(200, self.request_log())
                case "POST", ["reset"]:
                    self.reset()
                    return _Reply.json(200, {"ok": True})
                case "POST", ["faults"]:
                    added = asdict(self.add_fault(**body))
                    return _Reply.json(201, {k: v for k, v in added.items() if k[0] != "_" and k != "then"})
                case "GET", ["switches"]:
                    return _Reply.json(200, self.set_switches())
                case "POST", ["switches"]:
                    return _Reply.json(200, self.set_switches(**body))
                case "POST", ["token-check"]:
                    return _Reply.json(200, self.token_check(str(body.get("token", ""))))
                case "POST", ["meetings", mode, meeting_id, "session"]:
                    session_id = self.start_session(
                        mode,
                        meeting_id,
                        participant_ids=body.get("participant_ids", ()),
                        custom_participant_ids=body.get("custom_participant_ids", ()),
                    )
                    return _Reply.json(201, {"id": session_id})
                case "POST", ["rotate-key", mode]:
                    return _Reply.json(200, {"public_key": self.rotate_key(mode)})
                case "POST", ["deliver"]:
                    return _Reply.json(200, {"deliveries": self.deliver(**body)})
                case "GET", ["webhooks"]:
                    return _Reply.json(200, self.sent_webhooks())
                case "POST", ["webhooks", "drain"]:
                    return _Reply.json(200, {"drained": self.drain_webhooks(float(body.get("timeout", 10.0)))})
            return _Reply.json(404, {"error": f"no admin route {method} {path}"})
        except ApiError as error:
            return _Reply.json(error.status, error.body())
        except (TypeError, ValueError, KeyError, re.error) as error:
            return _Reply.json(400, {"error": f"{error.__class__.__name__}: {error}"})

    def _new_tenants(self) -> dict[str, Tenant]:
        organizations = {"dyte": self.dyte_org_id, "realtimekit": self.rtk_app_id}
        return {
            mode: Tenant(
                mode, organizations[mode], self._token_keys[mode], self.switches, self._seeded(mode), self._link
            )
            for mode in MODES
        }

    def _seeded(self, mode: str) -> dict[str, dict[str, Any]]:
        """The presets a new organization has: the mode's defaults and the ones the settings name."""
        roles = {name: role for role, name in DEFAULT_PRESETS[mode].items()}
        roles.update({name: role for role, name in self._presets[mode].items()})
        return {name: presets.body(role, name) for name, role in roles.items()}

    def _tenant(self, mode: str) -> Tenant:
        return self._tenants[self._mode(mode)]

    @staticmethod
    def _mode(mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        return mode


def _paced(chunks: Iterable[bytes], rate: int, cut: int, wake: threading.Event) -> Iterator[bytes]:
    """A file's body as slow and as broken as the switches say: `rate` bytes a second (0: at once), nothing after
    `cut` bytes (0: all of it); a reset or stop cuts a slow one short."""
    sent = 0
    for chunk in chunks:
        if cut and sent + len(chunk) >= cut:
            yield chunk[: cut - sent]
            return
        yield chunk
        sent += len(chunk)
        if rate and wake.wait(len(chunk) / rate):
            return


def _parsed(raw_body: bytes) -> Any:
    """A request body as the log keeps it: its JSON, else None (none, or not JSON)."""
    try:
        return json.loads(raw_body) if raw_body.strip() else None
    except ValueError:
        return None


class _Server(LoopbackServer):
    def __init__(self, address: tuple[str, int], stand_in: ProviderStandIn):
        self.stand_in = stand_in
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the stand-in keeps its own request log."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return self._send(_Reply.json(411, ApiError(411, "Content-Length is required").body()))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return self._send(_Reply.json(400, ApiError(400, "BAD_REQUEST: bad Content-Length").body()))
        raw_body = self.rfile.read(length) if length > 0 else b""
        reply = self.server.stand_in._serve(method, self.path, self.headers, raw_body)
        if reply.drop:
            self.close_connection = True
            return None
        return self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(reply.length if reply.stream is not None else len(reply.body)))
        self.end_headers()
        sent = 0
        for chunk in reply.stream if reply.stream is not None else (reply.body,):
            self.wfile.write(chunk)
            sent += len(chunk)
        if sent < (reply.length if reply.stream is not None else len(reply.body)):
            self.close_connection = True  # fewer bytes than Content-Length promised: the reader sees it
