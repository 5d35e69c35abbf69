"""Webhooks and what they build, attacked: recordings."""

from __future__ import annotations

import requests

from dev.provider import recording_status
from tests.api.test_convergence import converge
from tests.api.test_local_room import provider_client, room
from tests.hostile.tools import deliver, poll


def test_an_uploaded_recording_is_copied_into_our_storage(dyte_app):
    app = dyte_app
    client = provider_client(app)
    app.provider.set_switches(recording_size_bytes=50_000)
    try:
        owner = app.user("owner")
        meeting = owner.create(settings={"recordOnStart": True})
        pmid = meeting["providerMeetingId"]
        token = owner.call("POST", f"/meetings/{meeting['id']}/join").json()["authToken"]
        room(app, token, "enter")
        room(app, token, "leave")  # the last peer leaves: the stand-in uploads the recording
    finally:
        app.provider.set_switches(recording_size_bytes=3 * 1024 * 1024)
    [recording_id] = [r.id for r in app.provider._tenants["dyte"].recordings.values() if r.meeting_id == pmid]
    uploaded = client._call("GET", f"/recordings/{recording_id}")["data"]
    # The provider's UPLOADED delivery, posted here rather than through the stand-in's shared outbox.
    deliver(
        app,
        recording_status(
            pmid,
            uploaded["session_id"],
            status="UPLOADED",
            recording_id=recording_id,
            file_size=uploaded["file_size"],
            download_url=uploaded["download_url"],
            download_url_expiry=uploaded["download_url_expiry"],
        ),
    )
    path = f"/meetings/{meeting['id']}/recordings"
    poll(lambda: [r for r in owner.call("GET", path).json()["items"] if r["status"] == "UPLOADED"])
    # The copy job takes its pending entry on its first run, which may come after the delivery is applied.
    [recording] = poll(lambda: [r for r in owner.call("GET", path).json()["items"] if r["stored"]], timeout=60)
    converge(app, timeout=60)  # every follow-up, job and sweep the recording caused has run
    assert not recording["downloadUrl"].startswith(app.provider.url)  # our copy, not the provider's link
    assert len(requests.get(recording["downloadUrl"], timeout=10).content) == 50_000
