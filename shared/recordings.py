"""Recordings kept in our own storage: the copy from the provider, the links we hand out, and their deletion.

The providers keep a recording for seven days. Once it is UPLOADED, a background copy streams it from the
provider's link into the app's own storage account (private container `recordings`, one block blob per
recording, `{meeting}/{recording}`), and from then on the owner and hosts are handed links to our copy: a
read-only SAS for that one blob, valid fifteen minutes, signed with a user delegation key (the app's
identity: in Azure the account has no usable key) or, only where storage is a connection string (Azurite),
with the account key. Until the copy is done the provider's own link is shown.

The webhook applier writes `copy: owed` (and `owedBy`, its delivery) into the recording row itself when
the row first reaches UPLOADED with a link, and queues the `copy-recording` job after that batch commits;
its delivery is settled only once the put succeeded, and its next attempt queues the job again while the
row still owes the copy to it. The job's first step writes the copy's pending entry (once), which the
sweep re-drives until the job completes it. The job:

- takes a 60-second lease on the blob (renewed as it goes), so one copier at a time writes it, whatever
  the sweep or a stale message queue again;
- resumes from the blob's block list: committed blocks, then the blocks staged after them (a crash or a
  time-out leaves those), committed first so they can be read back; the SHA-256 of what is already copied
  is computed again by reading it back from our blob (hashlib cannot save its state, and re-reading our
  own blob is cheaper than downloading again from the provider);
- streams the rest from the provider with `Range: bytes={offset}-`, in 8 MiB blocks (`stage_block`, each
  checked with its MD5 by the service), hashing each block as it is staged, never holding more than a
  block or two; a provider link that has expired (or fails) is refreshed from the provider's recording
  API, which also says when the recording is gone for good; a broken answer is picked up again from the
  last block, a few times, before the job backs off;
- stops at its time budget, commits, and queues itself again; on a failure it backs off with the pending
  entry (`pending.failed`) and tries again from where it stopped;
- when the whole file is there: commits the block list (content type, SHA-256 as metadata), indexes the
  blob for retention, and writes `stored`, `blobName`, `sha256`, `storedSize`, `storedAt` on the recording
  row (ETag-guarded, only if the copy is still owed: a recording erased meanwhile loses the blob instead).

Deleting: the retention purge deletes a stored recording on the day `RECORDING_RETENTION_DAYS` after it
was stored (an `Expiring` entry), and every recording of a meeting with the meeting; account closing erases the
recordings of the meetings the account owned. A blob lifecycle rule (infra) is the backstop.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import mimetypes
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared import jobs, pending, problems, schema, storage, times
from shared.events import state
from shared.model import Meeting
from shared.storage import Batch, Stale

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)

# The recording row's `copy`: owed by the applier; then stored, or erased (account closing, a meeting's
# deletion), expired (RECORDING_RETENTION_DAYS), or gone (the provider no longer has it).
OWED, STORED, ERASED, EXPIRED, GONE = "owed", "stored", "erased", "expired", "gone"

BLOCK_BYTES = 8 * 1024 * 1024
READ_BYTES = 256 * 1024
TIME_BUDGET = 240.0  # seconds of copying per message: under host.json's functionTimeout of five minutes
LEASE_SECONDS = 60
RENEW_AFTER = 20.0
RETRIES_PER_RUN = 3  # broken provider answers picked up again within one run before backing off
LINK_LIFETIME = timedelta(minutes=15)
DELEGATION_KEY_LIFETIME = timedelta(hours=1)
LINK_MARGIN = timedelta(minutes=1)  # a provider link expiring sooner is refreshed before it is tried
DOWNLOAD_TIMEOUT = (5.0, 30.0)

_session: requests.Session | None = None
_delegation_keys: dict[str, tuple[Any, datetime]] = {}
_lock = threading.Lock()


class _Interrupted(Exception):
    """The provider's answer failed or broke off: go on from the last staged block."""


class _Failed(Exception):
    """This run cannot go on: back off and try again later."""


class _Gone(Exception):
    """The provider no longer has the recording: nothing can copy it any more."""


# Owing (in the webhook applier's batch) ---------------------------------------------------------------------


def owe(
    meeting_id: str, current: Mapping[str, Any] | None, merged: Mapping[str, Any], delivery: str
) -> tuple[dict[str, Any], list[tuple[jobs.Kind, dict[str, Any]]]]:
    """What the webhook delivery `delivery` owes the recording row besides what the webhooks say, and the
    job to queue once its batch commits: the copy, the first time the row is UPLOADED with a link, and
    again while the copy is still owed to this delivery (an attempt whose put failed)."""
    current = current or {}
    job = [(jobs.Kind.COPY_RECORDING, {"meetingId": meeting_id, "recordingId": merged["recordingId"]})]
    if current.get("copy") == OWED and current.get("owedBy") == delivery:
        return {}, job
    if merged.get("status") != "UPLOADED" or not merged.get("downloadUrl") or current.get("copy"):
        return {}, []
    return {"copy": OWED, "owedBy": delivery}, job


# The copy job ---------------------------------------------------------------------------------------------


def copy_job(ctx: Context, payload: dict[str, Any], budget: float = TIME_BUDGET) -> None:
    """Job `copy-recording`: copy what is left; past the budget, continue in a fresh message; on a failure,
    back off with the pending entry."""
    meeting_id, recording_id = payload.get("meetingId"), payload.get("recordingId")
    if schema.owner_partition(meeting_id) is None or not state.ident(recording_id):
        log.error(json.dumps({"operation": "recordings.copy", "status": "bad-payload"}))
        return
    key = schema.pending_copy(meeting_id, recording_id)
    started = time.monotonic()
    try:
        # From here the sweep keeps the copy going, whatever becomes of this message.
        pending.keep(ctx, key, schema.JOBS_QUEUE, jobs.message(jobs.Kind.COPY_RECORDING, payload))
        outcome = copy(ctx, meeting_id, recording_id, started + budget)
    except (_Failed, AzureError, problems.Problem, Stale) as failure:
        reason = failure.slug if isinstance(failure, problems.Problem) else f"{type(failure).__name__}: {failure}"
        _retry_later(ctx, key, payload, reason)
        return
    if outcome == "continue":
        jobs.enqueue(ctx, jobs.Kind.COPY_RECORDING, payload)
    elif outcome != "busy":  # busy: another copier holds the blob; the entry outlives it if it dies
        pending.complete(ctx, key)
    log.info(
        json.dumps(
            {
                "operation": "recordings.copy",
                "meetingId": meeting_id,
                "recordingId": recording_id,
                "status": outcome,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )


def _retry_later(ctx: Context, key: str, payload: dict[str, Any], reason: str) -> None:
    message = jobs.message(jobs.Kind.COPY_RECORDING, payload)
    try:
        delay = pending.failed(ctx, key, reason, schema.JOBS_QUEUE, message)
        jobs.enqueue(ctx, jobs.Kind.COPY_RECORDING, payload, delay=delay.total_seconds())
    except Exception as error:  # the entry is due soon anyway: the sweep takes it from here
        log.warning("recordings: could not schedule a retry: %s", type(error).__name__)
    log.warning(
        json.dumps(
            {
                "operation": "recordings.copy",
                "meetingId": payload["meetingId"],
                "recordingId": payload["recordingId"],
                "status": "retrying",
                "reason": reason[:200],
            }
        )
    )


def copy(ctx: Context, meeting_id: str, recording_id: str, deadline: float) -> str:
    """Copy what is left of one recording: `done` (stored, or nothing is owed), `continue` (past `deadline`,
    progress kept) or `busy` (another copier holds the blob). Raises on a failure; progress is kept."""
    table = ctx.storage.table(schema.MEETINGS)
    row = _row(ctx, meeting_id, recording_id)
    blob = _blob(ctx, meeting_id, recording_id)
    if row is None or row.get("copy") != OWED:
        if row is None or row.get("copy") in (ERASED, EXPIRED, GONE):
            _delete_blob(blob)  # a copier that raced the deletion leaves nothing behind
        return "done"
    owner = schema.owner_partition(meeting_id)
    if ctx.closed is not None and ctx.closed.is_closed(owner):
        _settle(table, row, ERASED)  # a recording uploaded after its owner closed the account is never kept
        _delete_blob(blob)
        return "done"
    try:
        lease = _lease(blob)
    except ResourceExistsError:
        return "busy"
    try:
        return _Copy(ctx, table, row, blob, lease, deadline).run()
    except _Gone:
        # Nothing can copy it any more: a recording lost, for a person to know about.
        gone = {"operation": "recordings.copy", "meetingId": meeting_id, "recordingId": recording_id, "status": "gone"}
        log.error(json.dumps(gone))
        _settle(table, row, GONE)
        _delete_blob(blob)
        return "done"
    finally:
        with contextlib.suppress(AzureError):
            lease.release()


def _lease(blob: Any) -> Any:
    """The blob's lease (ResourceExistsError while another copier holds it), the blob made first if need be."""
    try:
        return blob.acquire_lease(lease_duration=LEASE_SECONDS)
    except ResourceNotFoundError:
        with contextlib.suppress(ResourceExistsError):
            blob.upload_blob(b"", overwrite=False)  # empty until the first commit
        return blob.acquire_lease(lease_duration=LEASE_SECONDS)


class _Copy:
    """One run of the copy, holding the blob's lease: the blocks so far, their hash, and the source."""

    def __init__(self, ctx: Context, table: Any, row: Any, blob: Any, lease: Any, deadline: float):
        self.ctx, self.table, self.row, self.blob, self.lease, self.deadline = ctx, table, row, blob, lease, deadline
        self.source = _Source(ctx, row)
        self.ids: list[str] = []
        self.offset = 0
        self.total: int | None = None
        self.digest = hashlib.sha256()
        self.content_type = ""
        self.renewed = time.monotonic()

    def run(self) -> str:
        self._resume()
        failures = 0
        while True:
            try:
                if self._transfer():
                    break
                self._commit()
                return "continue"
            except _Interrupted as interruption:
                failures += 1
                if failures > RETRIES_PER_RUN:
                    raise _Failed(str(interruption)) from None
                log.info("recordings: %s; going on from byte %d", interruption, self.offset)
                time.sleep(0.25 * 2**failures)
        self._finish()
        return "done"

    def _resume(self) -> None:
        """Committed blocks, then the full-size blocks staged after them (committed, so that they can be read
        back and hashed); anything else is staged again."""
        committed, staged = self.blob.get_block_list("all", lease=self.lease)
        ids: list[str] = []
        offset, complete = 0, False
        for block in committed:
            if complete or block.id != _block_id(len(ids)) or block.size > BLOCK_BYTES:
                ids, offset, complete = [], 0, False  # not a list this code wrote (another block size): start over
                break
            ids.append(block.id)
            offset += block.size
            complete = block.size < BLOCK_BYTES  # only the final commit ends with a short block
        sizes = {block.id: block.size for block in staged}
        while not complete and sizes.get(_block_id(len(ids))) == BLOCK_BYTES:
            ids.append(_block_id(len(ids)))
            offset += BLOCK_BYTES
        self.ids, self.offset = ids, offset
        if ids != [block.id for block in committed]:
            self._commit()
        for start in range(0, offset, BLOCK_BYTES):
            self.digest.update(self.blob.download_blob(offset=start, length=min(BLOCK_BYTES, offset - start)).readall())
            self._keep_lease()
        if complete:
            self.total = offset

    def _transfer(self) -> bool:
        """Stage blocks from the provider until the file ends (True) or the time budget does (False)."""
        if self.total is not None and self.offset >= self.total:
            return True
        response = self.source.open(self.offset)
        with response:
            if response.status_code == 416:  # nothing after what is copied: done, if the sizes agree
                if _range_total(response.headers.get("Content-Range")) != self.offset:
                    raise _Failed("the provider's file is shorter than what was copied")
                self.total = self.offset
                return True
            first, total = _extent(response, self.offset)
            self.total = total
            self.content_type = response.headers.get("Content-Type", "")
            skip = self.offset - first  # a server that ignored the range sends what is copied already
            buffer = bytearray()
            try:
                for chunk in response.iter_content(READ_BYTES):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    buffer += chunk
                    while len(buffer) >= BLOCK_BYTES:
                        self._stage(bytes(memoryview(buffer)[:BLOCK_BYTES]))
                        del buffer[:BLOCK_BYTES]
                        if time.monotonic() > self.deadline:
                            return False
            except requests.RequestException as error:
                raise _Interrupted(f"the download broke off ({type(error).__name__})") from None
            if buffer:
                self._stage(bytes(buffer))  # the last, short block
            if total is None:
                self.total = self.offset
            elif self.offset != total:
                raise _Interrupted(f"the download ended at byte {self.offset} of {total}")
            return True

    def _stage(self, block: bytes) -> None:
        block_id = _block_id(len(self.ids))
        self.blob.stage_block(block_id, block, lease=self.lease, validate_content=True)
        self.digest.update(block)
        self.ids.append(block_id)
        self.offset += len(block)
        self._keep_lease()

    def _keep_lease(self) -> None:
        if time.monotonic() - self.renewed > RENEW_AFTER:
            self.lease.renew()
            self.renewed = time.monotonic()

    def _commit(self, **options: Any) -> None:
        from azure.storage.blob import BlobBlock

        self.blob.commit_block_list([BlobBlock(block_id) for block_id in self.ids], lease=self.lease, **options)

    def _finish(self) -> None:
        from azure.storage.blob import ContentSettings

        sha256 = self.digest.hexdigest()
        content_type = self.content_type or mimetypes.guess_type(self.source.url.split("?", 1)[0])[0] or ""
        content_type = content_type or "application/octet-stream"
        extension = mimetypes.guess_extension(content_type) or ""
        name = f"recording-{schema.key_part(self.row['recordingId'])}{extension}"
        settings = ContentSettings(content_type=content_type, content_disposition=f'attachment; filename="{name}"')
        self._commit(content_settings=settings, metadata={"sha256": sha256})
        stored_at = self.ctx.clock()
        meeting_id = _meeting_of(self.row)
        # The retention index first: a stored blob can never be missed by the purge.
        _schedule(self.ctx, meeting_id, self.row["recordingId"], stored_at)
        reported = self.row.get("sizeBytes", -1.0)
        if reported >= 0 and reported != self.offset:
            log.warning("recordings: the provider reported %d bytes and served %d", reported, self.offset)
        stored = {
            "copy": STORED,
            "stored": True,
            "blobName": self.blob.blob_name,
            "sha256": sha256,
            "storedSize": float(self.offset),
            "storedAt": times.stamp(stored_at),
        }
        if not _record(self.ctx, self.table, self.row, stored):
            _delete_blob(self.blob)  # erased or deleted while it was copied


def _record(ctx: Context, table: Any, first: Any, stored: dict[str, Any]) -> bool:
    """Write `stored` on the recording row if it still owes the copy; False when it no longer does. The row
    read before the copy is tried first: only a change since (a later webhook, an erasure) costs a read."""
    known = iter([first])

    def attempt() -> bool:
        row = next(known, None) or _row(ctx, _meeting_of(first), first["recordingId"])
        if row is None or row.get("copy") != OWED:
            return False
        batch = Batch(table, row["PartitionKey"])
        entity = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], **stored}
        batch.update(entity, row.metadata["etag"], merge=True)
        batch.commit()
        return True

    return storage.retry(attempt)


class _Source:
    """The provider's file: its link from the row, refreshed from the recording API when it expires."""

    def __init__(self, ctx: Context, row: Any):
        self.ctx, self.row = ctx, row
        self.url = row.get("downloadUrl") or ""
        self.expires = times.from_stamp(row.get("downloadUrlExpiresAt"))

    def open(self, offset: int) -> requests.Response:
        if not self.url or (self.expires is not None and self.expires <= self.ctx.clock() + LINK_MARGIN):
            self._refresh()
        try:
            response = self._get(offset)
        except _Interrupted:
            response = None
        if response is None or response.status_code in (401, 403, 404, 410):
            # Expired, moved or unreachable: the provider signs a fresh link (or says the recording is gone).
            if response is not None:
                response.close()
            self._refresh()
            response = self._get(offset)
        if response.status_code in (200, 206, 416):
            return response
        response.close()
        if response.status_code == 429 or response.status_code >= 500:
            raise _Interrupted(f"the provider's link answered HTTP {response.status_code}")
        raise _Failed(f"the provider's link answered HTTP {response.status_code}")

    def _get(self, offset: int) -> requests.Response:
        # Never our credentials: the link is presigned. Identity encoding: ranges count the stored bytes.
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            return _downloads().get(self.url, headers=headers, stream=True, timeout=DOWNLOAD_TIMEOUT)
        except requests.RequestException as error:
            raise _Interrupted(f"the provider's link is unreachable ({type(error).__name__})") from None

    def _refresh(self) -> None:
        meeting_id = _meeting_of(self.row)
        try:
            meeting = Meeting.from_row(
                self.ctx.storage.table(schema.MEETINGS).get_entity(
                    schema.owner_partition(meeting_id), schema.meeting_key(meeting_id)
                )
            )
        except ResourceNotFoundError:
            raise _Gone() from None
        found = self.ctx.provider(meeting.provider).recording(self.row["recordingId"])
        if found is None:
            raise _Gone()
        if not state.url(found.download_url):
            raise _Failed("the provider gave no download link")
        self.url = found.download_url
        self.expires = times.from_stamp(state.instant(found.download_url_expiry))


def _downloads() -> requests.Session:
    global _session
    with _lock:
        if _session is None:
            _session = requests.Session()
        return _session


def _extent(response: requests.Response, offset: int) -> tuple[int, int | None]:
    """Where the answer's body starts in the file, and the file's size when the answer says it."""
    if response.status_code == 206:
        first, total = _content_range(response.headers.get("Content-Range"))
        if first is None or first > offset:
            raise _Failed("the provider answered another range than the one asked for")
        return first, total
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """`bytes 100-199/1000` -> (100, 1000)."""
    try:
        unit, _, rest = (value or "").partition(" ")
        span, _, total = rest.partition("/")
        first = int(span.split("-", 1)[0])
        return (first, None if total == "*" else int(total)) if unit == "bytes" else (None, None)
    except ValueError:
        return None, None


def _range_total(value: str | None) -> int | None:
    """`bytes */1000` -> 1000."""
    _, _, total = (value or "").partition("/")
    return int(total) if total.isdigit() else None


def _block_id(index: int) -> str:
    """Block ids must all have one length within a blob: the index, zero-padded, base64 as the API wants."""
    return base64.b64encode(f"{index:010d}".encode()).decode("ascii")


# Links ----------------------------------------------------------------------------------------------------


def download(ctx: Context, row: Mapping[str, Any]) -> dict[str, Any]:
    """The Recording's `stored`, `downloadUrl` and `downloadUrlExpiresAt`: a link to our copy once stored,
    the provider's as long as there is no copy of ours (none once ours was erased or expired)."""
    copied = row.get("copy") or ""
    if copied == STORED:
        url, expires = link(ctx, row["blobName"])
        return {"stored": True, "downloadUrl": url, "downloadUrlExpiresAt": times.format_utc(expires) if url else None}
    if copied in ("", OWED, GONE):
        url = row.get("downloadUrl") or None
        return {
            "stored": False,
            "downloadUrl": url,
            "downloadUrlExpiresAt": times.render(row.get("downloadUrlExpiresAt")),
        }
    return {"stored": False, "downloadUrl": None, "downloadUrlExpiresAt": None}


def link(ctx: Context, blob_name: str) -> tuple[str | None, datetime]:
    """A read-only link to one stored blob, valid `LINK_LIFETIME`, and its expiry.

    Signed with a user delegation key (the app's identity) when storage is identity-based, as it is in
    Azure; with the account key only when storage is a connection string (Azurite).
    """
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    now = ctx.clock()
    expires = now + LINK_LIFETIME
    service = ctx.storage.blob_service()
    container = ctx.storage.container(schema.RECORDINGS_CONTAINER)
    signing: dict[str, Any]
    if ctx.settings.storage_connection_string:
        account_key = getattr(service.credential, "account_key", None)
        if not account_key:
            log.warning("recordings: the storage connection string has no account key to sign links with")
            return None, expires
        signing = {"account_key": account_key}
    else:
        signing = {"user_delegation_key": _delegation_key(service, now, expires), "protocol": "https"}
    token = generate_blob_sas(
        service.account_name,
        container.container_name,
        blob_name,
        permission=BlobSasPermissions(read=True),
        expiry=expires,
        **signing,
    )
    return f"{container.get_blob_client(blob_name).url}?{token}", expires


def _delegation_key(service: Any, now: datetime, until: datetime) -> Any:
    """A user delegation key covering `until` (the app's identity needs Storage Blob Delegator), asked for
    about once an hour per process: keys last an hour, so one revoked by an operator is soon replaced."""
    with _lock:
        cached = _delegation_keys.get(service.url)
        if cached is not None and cached[1] >= until:
            return cached[0]
    # Valid from a little earlier: clocks differ.
    key = service.get_user_delegation_key(now - timedelta(minutes=5), now + DELEGATION_KEY_LIFETIME)
    with _lock:
        _delegation_keys[service.url] = (key, now + DELEGATION_KEY_LIFETIME)
    return key


# Deleting -------------------------------------------------------------------------------------------------


def erase(ctx: Context, meeting_id: str) -> int:
    """Every recording of the meeting out of our storage (account closing, a meeting's deletion): the rows
    say so first (a copier still running then deletes what it wrote), then the blobs go. Idempotent."""
    table = ctx.storage.table(schema.MEETINGS)
    low, high = schema.activity_range(meeting_id, schema.RECORDING)
    for row in table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and ( copy eq @owed or copy eq @stored )",
        parameters={"pk": schema.owner_partition(meeting_id), "low": low, "high": high, "owed": OWED, "stored": STORED},
        select=["PartitionKey", "RowKey"],
    ):
        _settle(table, row, ERASED)
    container = ctx.storage.container(schema.RECORDINGS_CONTAINER)
    deleted = 0
    for item in container.list_blobs(name_starts_with=schema.recording_blobs(meeting_id)):
        _delete_blob(container.get_blob_client(item.name))
        deleted += 1
    return deleted


def expire(ctx: Context, meeting_id: str, recording_id: str, now: datetime) -> str:
    """deleted | rescheduled | kept: a stored recording goes on the day `RECORDING_RETENTION_DAYS` after it
    was stored (checked again: the setting may have changed since its entry was written)."""
    row = _row(ctx, meeting_id, recording_id)
    if row is None or row.get("copy") != STORED:
        return "kept"
    stored_at = times.from_stamp(row["storedAt"])
    if _day(stored_at + timedelta(days=ctx.settings.recording_retention_days)) > _day(now):
        # A later day's partition, never the entry's own: the purge deletes that one once this returns.
        _schedule(ctx, meeting_id, recording_id, stored_at)
        return "rescheduled"
    _settle(ctx.storage.table(schema.MEETINGS), row, EXPIRED)
    _delete_blob(_blob(ctx, meeting_id, recording_id))
    return "deleted"


def _schedule(ctx: Context, meeting_id: str, recording_id: str, stored_at: datetime) -> None:
    due = stored_at + timedelta(days=ctx.settings.recording_retention_days)
    ctx.storage.table(schema.EXPIRING).upsert_entity(
        {
            "PartitionKey": schema.expiring_partition(_day(due)),
            "RowKey": schema.expiring_recording(meeting_id, recording_id),
            "meetingId": meeting_id,
            "recordingId": recording_id,
        }
    )


def _day(instant: datetime) -> str:
    return instant.strftime("%Y%m%d")


def _settle(table: Any, row: Any, outcome: str) -> None:
    """The row no longer has (or will have) a copy of ours."""
    with contextlib.suppress(ResourceNotFoundError):
        table.update_entity(
            {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], "copy": outcome, "stored": False},
            mode=UpdateMode.MERGE,
        )


def _delete_blob(blob: Any) -> None:
    """Gone, whoever holds its lease (a copier whose blob is deleted fails and finds out why)."""
    from azure.storage.blob import BlobLeaseClient

    with contextlib.suppress(ResourceNotFoundError):
        with contextlib.suppress(HttpResponseError):
            BlobLeaseClient(blob).break_lease(lease_break_period=0)
        blob.delete_blob()


# Rows and blobs -------------------------------------------------------------------------------------------


def _row(ctx: Context, meeting_id: str, recording_id: str) -> Any:
    try:
        return ctx.storage.table(schema.MEETINGS).get_entity(
            schema.owner_partition(meeting_id), schema.activity_key(meeting_id, schema.recording_key(recording_id))
        )
    except ResourceNotFoundError:
        return None


def _meeting_of(row: Any) -> str:
    """The meeting id in a webhook row's key (`m|{meeting}|w|...`)."""
    return row["RowKey"].split("|", 2)[1]


def _blob(ctx: Context, meeting_id: str, recording_id: str) -> Any:
    container = ctx.storage.container(schema.RECORDINGS_CONTAINER)
    return container.get_blob_client(schema.recording_blob(meeting_id, recording_id))
