"""The recordings copy and its links in the domain code, on Azurite and the provider stand-in: the time
budget, the blob lease, a failed final write, retention by days, and both ways of signing a link (the
account key on a connection string; a user delegation key on identity-based storage, against an Azurite
that speaks OAuth over HTTPS, as Azure does)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
import requests
from azure.core.credentials import AccessToken

from dev.azurite import ROOT
from shared import health, jobs, meetings, pending, recordings, retention, schema, times
from shared.auth import Caller, user_id
from shared.context import Context
from shared.events import apply
from shared.storage import Storage
from tests import support

MiB = 1024 * 1024


@pytest.fixture
def ctx(domain_context):
    return domain_context(times.now())


@pytest.fixture
def size(provider):
    """Set the stand-in's recording size; the default back afterwards."""
    before = provider.set_switches()["recording_size_bytes"]
    yield lambda value: provider.set_switches(recording_size_bytes=value)
    provider.set_switches(recording_size_bytes=before)


def uploaded(ctx, provider, **changes) -> tuple[str, dict]:
    """A meeting of a fresh owner, and its recording's UPLOADED webhook applied (the copy owed)."""
    oid = str(uuid.uuid4())
    owner = Caller(
        support.TENANT, oid, "Olga", ("olga@contoso.test",), user_id(ctx.settings.id_hash_key, support.TENANT, oid)
    )
    meeting = meetings.create(ctx, owner, meetings.parse_create({"title": "Recorded"}), {"title": "Recorded"}, None)
    provider_meeting = meeting.meeting["providerMeetingId"]
    payload = provider.record("dyte", provider_meeting, str(uuid.uuid4()))
    payload["recording"].update(changes)
    body = json.dumps(payload).encode()
    record = {
        "key": hashlib.sha256(body).hexdigest(),
        "body": body,
        "receivedAt": times.stamp(ctx.clock()),
        "provider": "dyte",
    }
    assert apply.apply(ctx, record).outcome == "applied"
    return meeting.meeting["id"], payload["recording"]


def row_of(ctx, meeting_id: str, recording_id: str) -> dict:
    return recordings._row(ctx, meeting_id, recording_id)


def served(provider, recording_id: str) -> str:
    digest = hashlib.sha256()
    for chunk in provider.recording_bytes(recording_id):
        digest.update(chunk)
    return digest.hexdigest()


def blob_sha256(ctx, meeting_id: str, recording_id: str) -> str:
    digest = hashlib.sha256()
    for chunk in recordings._blob(ctx, meeting_id, recording_id).download_blob().chunks():
        digest.update(chunk)
    return digest.hexdigest()


def pending_entry(ctx, meeting_id: str, recording_id: str):
    return pending.get(ctx, schema.pending_copy(meeting_id, recording_id))


def file_requests(provider, recording_id: str) -> list[tuple[int, str | None]]:
    return [
        (entry["status"], entry["range"])
        for entry in provider.request_log()
        if entry["path"] == f"/__files/recordings/{recording_id}"
    ]


# The copy --------------------------------------------------------------------------------------------------


def test_the_copy_stops_at_its_time_budget_and_each_message_goes_on_from_the_last(ctx, provider, size):
    size(2 * 8 * MiB + 12345)
    meeting_id, recording = uploaded(ctx, provider)
    payload = {"meetingId": meeting_id, "recordingId": recording["id"]}
    assert row_of(ctx, meeting_id, recording["id"])["copy"] == "owed"
    assert pending_entry(ctx, meeting_id, recording["id"]) is None  # the queued job carries it until it runs
    runs = 0
    while row_of(ctx, meeting_id, recording["id"])["copy"] == "owed":
        recordings.copy_job(ctx, payload, budget=0)  # out of time after every block
        runs += 1
        assert runs <= 3
        if runs == 1:  # from its first run, the sweep keeps the copy going whatever becomes of the message
            assert pending_entry(ctx, meeting_id, recording["id"]).message == json.dumps(
                jobs.message(jobs.Kind.COPY_RECORDING, payload), separators=(",", ":")
            )
    row = row_of(ctx, meeting_id, recording["id"])
    want = served(provider, recording["id"])
    assert (runs, row["sha256"], row["storedSize"]) == (3, want, 2 * 8 * MiB + 12345)
    assert blob_sha256(ctx, meeting_id, recording["id"]) == want
    assert file_requests(provider, recording["id"]) == [
        (200, None),
        (206, f"bytes={8 * MiB}-"),
        (206, f"bytes={16 * MiB}-"),
    ]
    assert pending_entry(ctx, meeting_id, recording["id"]) is None
    # Run again (a repeated message): nothing to do, nothing downloaded.
    recordings.copy_job(ctx, payload)
    assert len(file_requests(provider, recording["id"])) == 3


def test_one_copier_at_a_time_holds_the_blob(ctx, provider, size):
    size(MiB)
    meeting_id, recording = uploaded(ctx, provider)
    blob = recordings._blob(ctx, meeting_id, recording["id"])
    blob.upload_blob(b"")
    held = blob.acquire_lease(lease_duration=15)
    assert recordings.copy(ctx, meeting_id, recording["id"], time.monotonic() + 60) == "busy"
    recordings.copy_job(ctx, {"meetingId": meeting_id, "recordingId": recording["id"]})
    assert row_of(ctx, meeting_id, recording["id"])["copy"] == "owed"
    assert pending_entry(ctx, meeting_id, recording["id"]) is not None  # left for the copier (or the sweep)
    held.release()
    assert recordings.copy(ctx, meeting_id, recording["id"], time.monotonic() + 60) == "done"
    assert row_of(ctx, meeting_id, recording["id"])["sha256"] == served(provider, recording["id"])


def test_a_failed_final_write_is_finished_by_the_next_run_from_the_committed_blob(ctx, provider, size, storage):
    size(9 * MiB)
    meeting_id, recording = uploaded(ctx, provider)
    payload = {"meetingId": meeting_id, "recordingId": recording["id"]}
    storage.tables.fail("POST", re.escape("$batch"), status=503, times=3)  # the row's write, and the SDK's retries
    try:
        recordings.copy_job(ctx, payload)
    finally:
        storage.tables.clear_faults()
    entry = pending_entry(ctx, meeting_id, recording["id"])
    assert (entry.attempts, row_of(ctx, meeting_id, recording["id"])["copy"]) == (1, "owed")
    blob = recordings._blob(ctx, meeting_id, recording["id"])
    assert blob.get_blob_properties().size == 9 * MiB  # the whole file was committed before the write failed
    recordings.copy_job(ctx, payload)
    row = row_of(ctx, meeting_id, recording["id"])
    assert (row["copy"], row["sha256"]) == ("stored", served(provider, recording["id"]))
    assert file_requests(provider, recording["id"]) == [(200, None)]  # the second run had nothing left to fetch


def test_an_uploaded_recording_without_a_link_owes_no_copy(ctx, provider):
    meeting_id, recording = uploaded(ctx, provider, downloadUrl=None)
    row = row_of(ctx, meeting_id, recording["id"])
    assert row["status"] == "UPLOADED" and "copy" not in row
    assert pending_entry(ctx, meeting_id, recording["id"]) is None


def test_a_recording_the_provider_no_longer_has_is_given_up_and_keeps_its_link(ctx, provider):
    meeting_id, recording = uploaded(ctx, provider, id=str(uuid.uuid4()), downloadUrl="https://recordings.invalid/x")
    recordings.copy_job(ctx, {"meetingId": meeting_id, "recordingId": recording["id"]})
    row = row_of(ctx, meeting_id, recording["id"])
    assert (row["copy"], row["stored"]) == ("gone", False)
    assert pending_entry(ctx, meeting_id, recording["id"]) is None
    assert recordings.download(ctx, row) == {
        "stored": False,
        "downloadUrl": "https://recordings.invalid/x",
        "downloadUrlExpiresAt": times.render(row["downloadUrlExpiresAt"]),
    }


def test_health_counts_a_copy_waiting_more_than_ten_minutes_as_stuck(ctx, provider, size):
    size(MiB)
    meeting_id, recording = uploaded(ctx, provider)
    payload = {"meetingId": meeting_id, "recordingId": recording["id"]}
    started = ctx.clock.now
    ctx.clock.now = started + timedelta(minutes=5)
    assert pending.stuck(ctx, ctx.clock())["recordingCopies"] == 0
    provider.add_fault(path=f"^/__files/recordings/{recording['id']}", status=400, times=1)  # refused: no retry
    recordings.copy_job(ctx, payload)
    assert (
        pending_entry(ctx, meeting_id, recording["id"]).attempts,
        row_of(ctx, meeting_id, recording["id"])["copy"],
    ) == (
        1,
        "owed",
    )
    ctx.clock.now = started + timedelta(minutes=11)  # six minutes after the copy first ran
    assert health.record(ctx)["recordingCopies"] == 0
    ctx.clock.now = started + timedelta(minutes=16)
    assert health.record(ctx)["recordingCopies"] == 1
    report, status = health.check(ctx)
    assert (status, report["status"], report["checks"]["stuck"]["recordingCopies"]) == (200, "degraded", 1)
    assert meeting_id not in json.dumps(report) and recording["id"] not in json.dumps(report)  # counts only
    recordings.copy_job(ctx, payload)
    assert row_of(ctx, meeting_id, recording["id"])["copy"] == "stored"
    assert health.record(ctx)["recordingCopies"] == 0
    assert health.check(ctx)[0]["status"] == "ok"


# Retention -------------------------------------------------------------------------------------------------


def test_a_stored_recording_is_purged_on_the_day_its_retention_ends(domain_context, provider, size):
    now = times.now()
    ctx = domain_context(now, RECORDING_RETENTION_DAYS="30")
    size(MiB)
    meeting_id, recording = uploaded(ctx, provider)
    recordings.copy_job(ctx, {"meetingId": meeting_id, "recordingId": recording["id"]})
    blob = recordings._blob(ctx, meeting_id, recording["id"])
    ctx.clock.now = now + timedelta(days=29)
    assert retention.purge(ctx)["recordings"] == 0
    assert blob.exists()
    # Raised meanwhile: the entry that comes due is moved, not acted on.
    longer = domain_context(now + timedelta(days=30), RECORDING_RETENTION_DAYS="40")
    assert retention.purge(longer) == {"deliveries": 0, "meetings": 0, "recordings": 0, "rescheduled": 1, "deferred": 0}
    assert blob.exists()
    longer.clock.now = now + timedelta(days=40)
    assert retention.purge(longer)["recordings"] == 1
    assert not blob.exists()
    row = row_of(ctx, meeting_id, recording["id"])
    assert (row["copy"], row["stored"]) == ("expired", False)
    assert recordings.download(ctx, row) == {"stored": False, "downloadUrl": None, "downloadUrlExpiresAt": None}
    assert retention.purge(longer)["recordings"] == 0


# Links -----------------------------------------------------------------------------------------------------


def test_a_link_signed_with_the_account_key_reads_one_blob_until_it_expires(domain_context):
    now = times.now()
    ctx = domain_context(now)
    blob = ctx.storage.container(schema.RECORDINGS_CONTAINER).get_blob_client("m/r")
    blob.upload_blob(b"recorded bytes")
    url, expires = recordings.link(ctx, "m/r")
    assert expires == now + timedelta(minutes=15)
    assert requests.get(url, timeout=10).content == b"recorded bytes"
    ctx.clock.now = now - timedelta(minutes=16)  # signed sixteen minutes ago: expired a minute ago
    stale, _ = recordings.link(ctx, "m/r")
    assert requests.get(stale, timeout=10).status_code == 403


class _Token:
    """An Entra ID access token for storage as Azurite's `--oauth basic` checks it (issuer, audience, times;
    not the signature): what the app's identity presents in Azure."""

    def __init__(self):
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{support.TENANT}/",
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": "0b0b0b0b-1111-4222-8333-444444444444",
            "tid": support.TENANT,
        }
        parts = [{"alg": "RS256", "typ": "JWT"}, claims]
        encoded = [base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode() for part in parts]
        self.token, self.expires = ".".join([*encoded, "c2lnbmF0dXJl"]), now + 3600
        self.requests = 0

    def get_token(self, *scopes, **options) -> AccessToken:
        self.requests += 1
        return AccessToken(self.token, self.expires)


@pytest.fixture(scope="module")
def oauth_blobs(tmp_path_factory):
    """An Azurite blob service over HTTPS that takes bearer tokens (and so user delegation keys)."""
    import trustme

    folder = tmp_path_factory.mktemp("oauth-azurite")
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    certificate.private_key_pem.write_to_path(folder / "key.pem")
    certificate.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    # fmt: off
    process = subprocess.Popen(
        [
            str(ROOT / "node_modules" / ".bin" / "azurite-blob"), "--inMemoryPersistence", "--disableTelemetry",
            "--skipApiVersionCheck", "--blobHost", "127.0.0.1", "--blobPort", "0", "--oauth", "basic",
            "--cert", str(folder / "cert.pem"), "--key", str(folder / "key.pem"),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    # fmt: on
    try:
        port = None
        for line in process.stdout:
            match = re.search(r"listens on https://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "Azurite's blob service did not start"
        yield f"https://127.0.0.1:{port}/devstoreaccount1", str(folder / "ca.pem")
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_with_the_apps_identity_a_link_is_a_user_delegation_sas_over_https(oauth_blobs, prefix, monkeypatch):
    endpoint, ca_path = oauth_blobs
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_path)  # how the storage SDK trusts this Azurite's certificate
    settings = support.load(
        AzureWebJobsStorage="",
        AzureWebJobsStorage__accountName="devstoreaccount1",
        AzureWebJobsStorage__blobServiceUri=endpoint,
        TABLE_PREFIX=prefix,
    )
    assert settings.storage_connection_string is None
    identity = _Token()
    now = times.now()
    ctx = Context(settings, Storage(settings, credential=identity), {}, clock=lambda: now)
    blob = ctx.storage.container(schema.RECORDINGS_CONTAINER).get_blob_client("m/r")
    blob.upload_blob(b"recorded bytes")
    url, _ = recordings.link(ctx, "m/r")
    signed = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    assert {"skoid", "sktid", "ske"} <= set(signed) and "sig" in signed
    assert (signed["sp"], signed["sr"], signed["spr"]) == ("r", "b", "https")
    with requests.Session() as session:
        session.verify = ca_path
        assert session.get(url, timeout=10).content == b"recorded bytes"
        assert session.put(url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10).status_code == 403
        assert session.get(url.replace("m/r", "m/other"), timeout=10).status_code == 403
        second, _ = recordings.link(ctx, "m/r")
        assert session.get(second, timeout=10).status_code == 200
    stale_ctx = Context(settings, ctx.storage, {}, clock=lambda: now - timedelta(minutes=16))
    stale, _ = recordings.link(stale_ctx, "m/r")
    assert requests.get(stale, timeout=10, verify=ca_path).status_code == 403
