"""Recordings copied into our own storage, over HTTP: the provider stand-in serves a real file at the link of
its UPLOADED webhook, the app on the dev host copies it into Azurite's blob service, and the API hands the
owner and hosts a short-lived link to our copy. Interruptions of every kind (a killed process, storage
faults, provider 5xx, an expired provider link, an answer cut short) end in the same bytes."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

from dev import azurite
from dev.counting_proxy import CountingProxy
from dev.harness import Storage, start_app
from shared import schema, times
from tests.api.conftest import problem

MiB = 1024 * 1024
SWITCHES = (
    "recording_size_bytes",
    "recording_link_ttl_seconds",
    "recording_bytes_per_second",
    "recording_cut_after_bytes",
)


@pytest.fixture
def switches(provider):
    """The stand-in's recording switches, as the test sets them, back as they were afterwards."""
    before = provider.set_switches()
    yield provider.set_switches
    provider.set_switches(**{name: before[name] for name in SWITCHES})


# Helpers ------------------------------------------------------------------------------------------------


def eventually(check, timeout: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def record(app, meeting: dict, **changes) -> dict:
    """The stand-in records a session of the meeting and sends its UPLOADED webhook to the app."""
    payload = app.provider.record(app.video_provider, meeting["providerMeetingId"], str(uuid.uuid4()))
    payload["recording"].update(changes)
    results = app.provider.deliver(app.video_provider, payload, url=f"{app.url}/api/webhooks/dyte")
    assert [result["status"] for result in results] == [200]
    return payload["recording"]


def sha256_of(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def listed(user, meeting: dict) -> list[dict]:
    response = user.call("GET", f"/meetings/{meeting['id']}/recordings")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def stored(user, meeting: dict, recording_id: str, timeout: float = 30.0) -> dict:
    def check():
        return next((item for item in listed(user, meeting) if item["id"] == recording_id and item["stored"]), None)

    return eventually(check, timeout, what="the recording stored")


def tables(app) -> TableServiceClient:
    return TableServiceClient.from_connection_string(app.storage.server.connection_string)


def recording_row(app, meeting: dict, recording_id: str) -> dict:
    key = schema.activity_key(meeting["id"], schema.recording_key(recording_id))
    table = tables(app).get_table_client(f"{app.prefix}{schema.MEETINGS}")
    try:
        return table.get_entity(schema.owner_partition(meeting["id"]), key)
    except ResourceNotFoundError:
        return {}


def copied(app, meeting: dict, recording: dict, timeout: float = 30.0) -> dict:
    """The recording's row once its copy is stored."""
    return eventually(
        lambda: (row := recording_row(app, meeting, recording["id"])).get("copy") == "stored" and row,
        timeout,
        what="the copy stored",
    )


def container(app):
    service = BlobServiceClient.from_connection_string(app.storage.server.connection_string)
    return service.get_container_client(f"{app.prefix}{schema.RECORDINGS_CONTAINER}")


def blob_of(app, meeting: dict, recording_id: str):
    return container(app).get_blob_client(schema.recording_blob(meeting["id"], recording_id))


def download(url: str) -> tuple[int, str, int]:
    """Status, SHA-256 and size of what a link serves, streamed."""
    with requests.get(url, stream=True, timeout=30) as response:
        if response.status_code != 200:
            return response.status_code, "", 0
        digest, size = hashlib.sha256(), 0
        for chunk in response.iter_content(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return 200, digest.hexdigest(), size


def expected(app, recording: dict) -> str:
    return sha256_of(app.provider.recording_bytes(recording["id"]))


def assert_stored_as_served(app, meeting: dict, recording: dict, size: int) -> dict:
    """The row, the blob and our link agree with the bytes the provider served."""
    want = expected(app, recording)
    row = recording_row(app, meeting, recording["id"])
    assert (row["copy"], row["stored"], row["sha256"], row["storedSize"]) == ("stored", True, want, size)
    assert row["blobName"] == schema.recording_blob(meeting["id"], recording["id"])
    blob = blob_of(app, meeting, recording["id"])
    properties = blob.get_blob_properties()
    assert (properties.size, properties.metadata["sha256"]) == (size, want)
    assert properties.content_settings.content_type == "video/mp4"
    assert sha256_of(blob.download_blob().chunks()) == want
    return row


@pytest.fixture(scope="module")
def blob_proxy(storage):
    """Azurite's blob service behind a proxy that can fail chosen requests."""
    proxy = CountingProxy(storage.server.blob_port).start()
    yield proxy
    proxy.stop()


@dataclass
class BlobsProxied(Storage):
    """The session's storage, its blob service reached through `blobs` too."""

    blobs: CountingProxy | None = None

    @property
    def connection_string(self) -> str:
        return azurite.connection_string(self.blobs.port, self.queues.port, self.tables.port)


@pytest.fixture(scope="module")
def faulty_app(storage, provider, issuer, blob_proxy, tmp_path_factory):
    """A Dyte app whose blob requests pass the fault-injecting proxy."""
    proxied = BlobsProxied(storage.server, storage.tables, storage.queues, blob_proxy)
    log = (tmp_path_factory.mktemp("faulty") / "app.log").open("w")
    running = start_app(proxied, provider, issuer, "dyte", stderr=log)
    yield running
    running.stop()
    log.close()


# The copy and the link ------------------------------------------------------------------------------------


def test_an_uploaded_recording_is_stored_with_its_bytes_and_hash_and_only_owner_and_hosts_get_a_link(app, switches):
    owner, host, participant, stranger = (app.user(name) for name in ("owner", "host", "participant", "stranger"))
    meeting = owner.create(
        invitees=[{"email": host.email, "role": "host"}, {"email": participant.email, "role": "participant"}]
    )
    size = 2 * 8 * MiB + 12345  # two full blocks and a short one
    switches(recording_size_bytes=size)
    recording = record(app, meeting)
    item = stored(owner, meeting, recording["id"])
    assert_stored_as_served(app, meeting, recording, size)

    assert (item["status"], item["sizeBytes"], item["sessionId"]) == ("UPLOADED", size, recording["roomUUID"])
    url = item["downloadUrl"]
    assert url.startswith(f"http://127.0.0.1:{app.storage.server.blob_port}/") and url != recording["downloadUrl"]
    signed = parse_qs(urlsplit(url).query)
    assert (signed["sp"], signed["sr"]) == (["r"], ["b"])  # read-only, that one blob
    expires = times.parse_rfc3339(item["downloadUrlExpiresAt"])
    assert abs(expires - times.parse_rfc3339(signed["se"][0])) < timedelta(seconds=1)
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    assert download(url) == (200, expected(app, recording), size)
    host_item = next(i for i in listed(host, meeting) if i["id"] == recording["id"])
    assert host_item["stored"] and download(host_item["downloadUrl"])[0] == 200

    # The link reads that one blob and nothing else.
    assert requests.put(url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10).status_code == 403
    other = url.replace(schema.key_part(recording["id"]), "other")
    assert requests.get(other, timeout=10).status_code == 403
    tampered = url.replace("sp=r", "sp=rw")
    assert requests.get(tampered, timeout=10).status_code == 403

    # A participant and a stranger never get a link.
    body = problem(participant.call("GET", f"/meetings/{meeting['id']}/recordings"), 403, "forbidden")
    assert "downloadUrl" not in str(body)
    problem(stranger.call("GET", f"/meetings/{meeting['id']}/recordings"), 404, "not-found")

    # A later delivery for the same recording (a fresh provider link) changes the row, keeps the copy and
    # copies nothing again.
    fresh = dict(recording, downloadUrlExpiry="2099-01-01 00:00:00.000000Z")
    payload = {"event": "recording.statusUpdate", "meeting": {"id": meeting["providerMeetingId"]}, "recording": fresh}
    app.provider.deliver(app.video_provider, payload, url=f"{app.url}/api/webhooks/dyte")
    row = eventually(lambda: (r := recording_row(app, meeting, recording["id"]))["downloadUrlExpiresAt"] > "2098" and r)
    assert (row["copy"], row["sha256"]) == ("stored", expected(app, recording))
    app.settle()
    assert pending_copy(app, meeting, recording["id"]) is None
    files = [e for e in app.provider.request_log() if e["path"] == f"/__files/recordings/{recording['id']}"]
    assert len(files) == 1
    assert listed(owner, meeting)[0]["stored"] is True


def test_until_the_copy_is_done_the_providers_link_is_listed(dyte_app, switches):
    owner = dyte_app.user("owner")
    meeting = owner.create()
    switches(recording_size_bytes=4 * MiB, recording_bytes_per_second=2 * MiB)
    recording = record(dyte_app, meeting)
    copying = eventually(lambda: listed(owner, meeting), what="the recording listed")[0]
    assert (copying["stored"], copying["downloadUrl"]) == (False, recording["downloadUrl"])
    assert copying["downloadUrlExpiresAt"] is not None
    assert stored(owner, meeting, recording["id"])["downloadUrl"] != recording["downloadUrl"]


# Interruptions --------------------------------------------------------------------------------------------


def pending_copy(app, meeting: dict, recording_id: str):
    table = tables(app).get_table_client(f"{app.prefix}{schema.PENDING}")
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey eq @rk",
        parameters={"pk": schema.PENDING_PARTITION, "rk": schema.pending_copy(meeting["id"], recording_id)},
    )
    return next(iter(rows), None)


def sweep(app) -> None:
    """The sweep timer, run now, with the copy's entry due (as it is a minute after it was written)."""
    table = tables(app).get_table_client(f"{app.prefix}{schema.PENDING}")
    for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": schema.PENDING_PARTITION}):
        table.update_entity(
            {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], "dueAt": times.stamp(times.now())},
            mode=UpdateMode.MERGE,
        )
    response = requests.post(f"{app.url}/admin/functions/sweep_pending", json={"input": ""}, timeout=10)
    assert response.status_code == 202


def test_a_copy_killed_mid_way_is_finished_by_the_next_instance_with_the_same_bytes(
    storage, provider, issuer, switches, tmp_path
):
    size = 40 * MiB + 777
    switches(recording_size_bytes=size, recording_bytes_per_second=10 * MiB)
    with (tmp_path / "first.log").open("w") as log:
        first = start_app(storage, provider, issuer, "dyte", stderr=log)
    try:
        owner = first.user("owner")
        meeting = owner.create()
        recording = record(first, meeting)
        blob = blob_of(first, meeting, recording["id"])

        def staged_some() -> bool:
            try:
                return len(blob.get_block_list("uncommitted")[1]) >= 2
            except Exception:
                return False

        eventually(staged_some, what="blocks staged")
    finally:
        first.process.kill()  # mid-copy: no commit, no release, no row written
        first.process.wait()
    assert recording_row(first, meeting, recording["id"])["copy"] == "owed"
    assert pending_copy(first, meeting, recording["id"]) is not None
    staged = len(blob.get_block_list("uncommitted")[1])
    # Its lease runs out within a minute: break it here rather than wait.
    BlobLeaseClient(blob).break_lease(lease_break_period=0)

    switches(recording_bytes_per_second=0)
    with (tmp_path / "second.log").open("w") as log:
        second = start_app(storage, provider, issuer, "dyte", prefix=first.prefix, stderr=log)
    try:
        sweep(second)
        copied(second, meeting, recording)
        assert_stored_as_served(second, meeting, recording, size)
        assert eventually(lambda: pending_copy(second, meeting, recording["id"]) is None, what="the entry done")
        # The second instance went on from what the first had staged, not from the start.
        ranges = [
            e.get("range")
            for e in provider.request_log()
            if e["path"] == f"/__files/recordings/{recording['id']}" and e["status"] in (200, 206)
        ]
        assert ranges[0] is None and ranges[-1] == f"bytes={staged * 8 * MiB}-"
    finally:
        second.stop()


def test_storage_faults_provider_errors_and_cut_answers_end_in_the_same_bytes(faulty_app, blob_proxy, switches):
    app, size = faulty_app, 5 * 8 * MiB + 99
    owner = app.user("owner")
    meeting = owner.create()
    switches(recording_size_bytes=size, recording_cut_after_bytes=12 * MiB)
    # Every answer breaks off after 12 MiB (one block each); the third staging of a block fails on every
    # try the storage SDK makes, and the first final commit too: the run backs off and the next goes on.
    blob_proxy.fail("PUT", r"blockid=MDAwMDAwMDAwMg", status=503, times=3)
    blob_proxy.fail("PUT", r"comp=blocklist", status=500, times=3)
    recording = record(app, meeting)
    copied(app, meeting, recording, timeout=90)
    assert_stored_as_served(app, meeting, recording, size)
    entry = pending_copy(app, meeting, recording["id"])
    assert entry is None


def test_provider_5xx_on_the_file_is_retried_until_it_answers(faulty_app, switches):
    app, size = faulty_app, 9 * MiB
    owner = app.user("owner")
    meeting = owner.create()
    switches(recording_size_bytes=size)
    app.provider.add_fault(mode="dyte", path="^/__files/recordings/", status=503, times=6)
    recording = record(app, meeting)
    eventually(lambda: (pending_copy(app, meeting, recording["id"]) or {}).get("attempts"), what="a failed run")
    copied(app, meeting, recording, timeout=60)
    assert_stored_as_served(app, meeting, recording, size)
    answers = [e["status"] for e in app.provider.request_log() if e["path"].endswith(recording["id"])]
    assert answers == [503] * 6 + [200]


def test_an_expired_provider_link_is_refreshed_from_the_recording_api(faulty_app, switches):
    app, size = faulty_app, 3 * MiB
    owner = app.user("owner")
    meeting = owner.create()
    switches(recording_size_bytes=size, recording_link_ttl_seconds=0)  # links expired as soon as signed
    # One link says it has expired: refreshed before it is tried. The other claims a day more than the
    # provider gives it: tried, refused (403), then refreshed.
    known = record(app, meeting)
    claimed = record(app, meeting, downloadUrlExpiry=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    switches(recording_link_ttl_seconds=3600)
    for recording in (known, claimed):
        copied(app, meeting, recording)
        assert_stored_as_served(app, meeting, recording, size)
    log = app.provider.request_log()
    refused = [e for e in log if e["path"] == f"/__files/recordings/{claimed['id']}" and e["status"] == 403]
    assert len(refused) == 1
    assert not [e for e in log if e["path"] == f"/__files/recordings/{known['id']}" and e["status"] == 403]
    assert len([e for e in log if re.fullmatch(r"/recordings/[^/]+", e["path"])]) >= 2


# Deletion -------------------------------------------------------------------------------------------------


def test_closing_the_owners_account_deletes_the_blobs_and_hosts_get_no_link(dyte_app, switches):
    owner, host = dyte_app.user("owner"), dyte_app.user("host")
    meeting = owner.create(invitees=[{"email": host.email, "role": "host"}])
    switches(recording_size_bytes=MiB)
    recordings = [record(dyte_app, meeting) for _ in range(2)]
    for recording in recordings:
        stored(owner, meeting, recording["id"])
    prefix = schema.recording_blobs(meeting["id"])
    assert len(list(container(dyte_app).list_blobs(name_starts_with=prefix))) == 2
    assert owner.call("DELETE", "/me").status_code == 204
    eventually(lambda: not list(container(dyte_app).list_blobs(name_starts_with=prefix)), 60, "blobs deleted")
    items = listed(host, meeting)
    assert [(i["stored"], i["downloadUrl"]) for i in items] == [(False, None), (False, None)]
    assert {recording_row(dyte_app, meeting, r["id"])["copy"] for r in recordings} == {"erased"}


def test_the_retention_purge_deletes_recordings_past_retention_and_with_their_meeting(dyte_app, switches):
    owner = dyte_app.user("owner")
    old, young = owner.create(title="old"), owner.create(title="young")
    switches(recording_size_bytes=MiB)
    kept, expiring = record(dyte_app, young), record(dyte_app, young)
    gone_with_meeting = record(dyte_app, old)
    for meeting, recording in ((young, kept), (young, expiring), (old, gone_with_meeting)):
        stored(owner, meeting, recording["id"])
    # Time passes: one recording was stored 366 days ago (its retention entry came due today), and the old
    # meeting was cancelled past MEETING_RETENTION_DAYS.
    now = datetime.now(UTC)
    service = tables(dyte_app)
    meetings = service.get_table_client(f"{dyte_app.prefix}{schema.MEETINGS}")
    expiring_table = service.get_table_client(f"{dyte_app.prefix}{schema.EXPIRING}")
    row = recording_row(dyte_app, young, expiring["id"])
    meetings.update_entity(
        {**{k: row[k] for k in ("PartitionKey", "RowKey")}, "storedAt": times.stamp(now - timedelta(days=366))},
        mode=UpdateMode.MERGE,
    )
    key = schema.expiring_recording(young["id"], expiring["id"])
    for entry in expiring_table.query_entities("RowKey eq @rk", parameters={"rk": key}):
        expiring_table.delete_entity(entry["PartitionKey"], entry["RowKey"])
    today = schema.expiring_partition(now.strftime("%Y%m%d"))
    expiring_table.upsert_entity(
        {"PartitionKey": today, "RowKey": key, "meetingId": young["id"], "recordingId": expiring["id"]}
    )
    assert owner.call("DELETE", f"/meetings/{old['id']}").status_code == 204
    partition = schema.owner_partition(old["id"])
    old_row = meetings.get_entity(partition, schema.meeting_key(old["id"]))
    meetings.update_entity(
        {"PartitionKey": partition, "RowKey": old_row["RowKey"], "cancelledAt": times.stamp(now - timedelta(days=400))},
        mode=UpdateMode.MERGE,
    )
    expiring_table.upsert_entity(
        {"PartitionKey": today, "RowKey": schema.expiring_meeting(old["id"]), "meetingId": old["id"]}
    )

    response = requests.post(f"{dyte_app.url}/admin/functions/purge_expired", json={"input": ""}, timeout=30)
    assert response.status_code == 202  # runs in the background
    eventually(lambda: not blob_of(dyte_app, young, expiring["id"]).exists(), what="the expired recording deleted")
    eventually(lambda: not blob_of(dyte_app, old, gone_with_meeting["id"]).exists(), what="the meeting's deleted")
    eventually(lambda: not list(expiring_table.query_entities("PartitionKey eq @pk", parameters={"pk": today})))
    assert blob_of(dyte_app, young, kept["id"]).exists()
    by_id = {item["id"]: item for item in listed(owner, young)}
    assert (by_id[expiring["id"]]["stored"], by_id[expiring["id"]]["downloadUrl"]) == (False, None)
    assert by_id[kept["id"]]["stored"] is True
    problem(owner.call("GET", f"/meetings/{old['id']}/recordings"), 404, "not-found")


# Memory ---------------------------------------------------------------------------------------------------


def peak_rss(process) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_200_mib_recording_is_copied_with_memory_bounded(storage, provider, issuer, switches, tmp_path):
    with (tmp_path / "app.log").open("w") as log:
        app = start_app(storage, provider, issuer, "dyte", stderr=log)
    try:
        owner = app.user("owner")
        meeting = owner.create()
        switches(recording_size_bytes=9 * MiB)  # a first copy: every module and pool is loaded
        stored(owner, meeting, record(app, meeting)["id"])
        before = peak_rss(app.process)
        size = 200 * MiB
        switches(recording_size_bytes=size)
        recording = record(app, meeting)
        stored(owner, meeting, recording["id"], timeout=180)
        after = peak_rss(app.process)
        assert_stored_as_served(app, meeting, recording, size)
        # Holding the file would take 200 MiB; the copy holds a block or two (8 MiB each).
        assert after - before < 32 * MiB
        blob_of(app, meeting, recording["id"]).delete_blob()  # Azurite keeps blobs in memory
    finally:
        app.stop()


# Costs ----------------------------------------------------------------------------------------------------


def test_what_a_copy_and_a_listing_cost(faulty_app, blob_proxy, switches):
    """The numbers in docs/data-model.md, counted at the servers."""
    app = faulty_app
    owner = app.user("owner")
    meeting = owner.create()
    switches(recording_size_bytes=2 * 8 * MiB + 5)  # three blocks
    stored(owner, meeting, record(app, meeting)["id"])  # this process's clients and caches are warm
    counts, blobs = app.counts(), blob_proxy.snapshot()
    recording = record(app, meeting)
    copied(app, meeting, recording)
    app.settle()
    blob_requests = blob_proxy.snapshot() - blobs
    # Receiving 2, applying 4 (read, the copy's pending entry, batch, settling), the copy 4 (its row, the
    # retention entry, the row's write, the entry's deletion).
    assert (counts.tables(), counts.queue_puts()) == (10, 2)
    # Lease (none yet), the empty blob, lease, block list, three blocks, commit, release.
    assert sum(blob_requests.values()) == 6 + 3
    assert [call["path"] for call in counts.provider_calls()] == [f"/__files/recordings/{recording['id']}"]
    counts, blobs = app.counts(), blob_proxy.snapshot()
    assert [item["stored"] for item in listed(owner, meeting)] == [True, True]
    # The meeting, the page of order rows, the rows: links are signed here, not fetched.
    assert (counts.tables(), sum((blob_proxy.snapshot() - blobs).values())) == (3, 0)
