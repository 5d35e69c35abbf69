"""The Graph stand-in's local mailbox over real HTTPS: what sendMail accepted, newest first, as HTML and JSON."""

from __future__ import annotations

import base64

import pytest
import requests

from dev.graph import GraphStandIn

SENDER = "meetings@contoso.test"
CALENDAR = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"


@pytest.fixture
def graph():
    with GraphStandIn().start() as stand_in:
        yield stand_in


@pytest.fixture
def client(graph):
    session = requests.Session()
    session.trust_env = False
    session.verify = graph.ca_path
    yield session
    session.close()


def send(client, graph: GraphStandIn, to: str, subject: str, body: str, calendar: bytes | None = None) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": graph.client_id,
        "client_secret": graph.client_secret,
        "scope": f"{graph.url}/.default",
    }
    token = client.post(graph.token_endpoint, data=form).json()["access_token"]
    message = {
        "subject": subject,
        "body": {"contentType": "HTML", "content": body},
        "toRecipients": [{"emailAddress": {"address": to}}],
    }
    if calendar is not None:
        content = base64.b64encode(calendar).decode()
        attachment = {"name": "invite.ics", "contentType": "text/calendar; method=REQUEST", "contentBytes": content}
        message["attachments"] = [{"@odata.type": "#microsoft.graph.fileAttachment", **attachment}]
    sent = client.post(
        f"{graph.url}/v1.0/users/{SENDER}/sendMail",
        json={"message": message, "saveToSentItems": False},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert sent.status_code == 202


def test_the_mailbox_lists_sent_mail_newest_first_with_the_calendar_file(graph, client):
    send(client, graph, "bob@contoso.test", "Invitation: Standup", "<p>Join at http://x/meetings/1</p>", CALENDAR)
    send(client, graph, "carol@contoso.test", "Cancelled: Retro", "<p>Sorry <b>&</b> bye</p>")

    listing = client.get(f"{graph.url}/mailbox.json", headers={"Origin": "http://localhost:5173"})
    assert listing.status_code == 200
    assert listing.headers["Access-Control-Allow-Origin"] == "*"
    items = listing.json()["items"]
    assert [(i["to"], i["subject"]) for i in items] == [
        (["carol@contoso.test"], "Cancelled: Retro"),
        (["bob@contoso.test"], "Invitation: Standup"),
    ]
    assert items[1]["from"] == SENDER and items[1]["body"]["content"] == "<p>Join at http://x/meetings/1</p>"
    (attachment,) = items[1]["attachments"]
    assert attachment["name"] == "invite.ics" and items[0]["attachments"] == []

    download = client.get(attachment["url"])
    assert download.status_code == 200 and download.content == CALENDAR
    assert download.headers["Content-Type"].startswith("text/calendar")
    assert download.headers["Content-Disposition"] == 'attachment; filename="invite.ics"'
    assert client.get(f"{graph.url}/mailbox/{items[0]['id']}/attachments/0").status_code == 404
    assert client.get(f"{graph.url}/mailbox/999/attachments/0").status_code == 404

    page = client.get(f"{graph.url}/mailbox")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.text.index("Cancelled: Retro") < page.text.index("Invitation: Standup")
    assert "bob@contoso.test" in page.text and attachment["url"] in page.text
    # The email's HTML is shown sandboxed and escaped into srcdoc, never as the page's own markup.
    assert '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox"' in page.text
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in page.text and "&lt;base target=&quot;_blank&quot;&gt;" in page.text
    assert not any(entry["path"].startswith("/mailbox") for entry in graph.request_log())


def test_the_mailbox_is_read_only_and_empty_at_first(graph, client):
    assert client.get(f"{graph.url}/mailbox.json").json() == {"items": []}
    assert "No email sent yet" in client.get(f"{graph.url}/mailbox").text
    assert client.post(f"{graph.url}/mailbox.json").status_code == 405
