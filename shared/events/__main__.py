"""Operator commands for provider webhooks; settings from the environment over local.settings.json.

python -m shared.events replay --meeting=ID | --since TIME  (with `=`: a meeting id may begin with "-")
python -m shared.events register-webhook --url URL [--provider dyte|realtimekit]
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError

from shared import problems, times
from shared import settings as app_settings
from shared.context import Context
from shared.events import deliveries, state
from shared.provider import ProviderClient, clients_from_settings
from shared.storage import Storage

WEBHOOK_NAME = "meetings backend"


def register_webhook(client: ProviderClient, url: str) -> str:
    """Create or update the subscription for `url` so it carries exactly the events we apply.

    Matched by URL, so that several deployments on one provider account keep their own. Says what it did.
    """
    existing = next((hook for hook in client.list_webhooks() if hook.url == url), None)
    if existing is None:
        created = client.create_webhook(WEBHOOK_NAME, url, list(state.HANDLED))
        return f"created webhook {created.id}"
    if set(existing.events) == set(state.HANDLED) and existing.enabled:
        return f"webhook {existing.id} is up to date"
    client.update_webhook(existing.id, events=list(state.HANDLED), enabled=True)
    return f"updated webhook {existing.id}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.events", description="Provider webhook operations.")
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help="enqueue recorded deliveries to be applied again (harmless)")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--meeting", metavar="ID", help="the deliveries applied to this meeting")
    which.add_argument("--since", metavar="TIME", help="the deliveries received since this RFC 3339 time")
    register = commands.add_parser("register-webhook", help="create or update the provider's webhook subscription")
    register.add_argument("--url", required=True, help="the receiver, e.g. https://<app>/api/webhooks/dyte")
    register.add_argument("--provider", choices=app_settings.PROVIDERS, help="default: VIDEO_PROVIDER")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    since = None
    if args.command == "replay" and args.since is not None:
        since = times.parse_rfc3339(args.since)
        if since is None:
            parser.error("--since must be an RFC 3339 time with an offset, e.g. 2026-11-25T10:00:00Z")
    if args.command == "register-webhook":
        target = urlsplit(args.url)
        loopback = target.hostname in ("localhost", "127.0.0.1", "::1")
        if not target.hostname or not (target.scheme == "https" or (target.scheme == "http" and loopback)):
            parser.error("--url must be an https URL (plain http only on loopback)")
    try:
        settings = app_settings.load()
        ctx = Context(settings=settings, storage=Storage(settings), providers=clients_from_settings(settings))
        if args.command == "replay":
            count = deliveries.replay(ctx, meeting_id=args.meeting, since=since)
            print(f"enqueued {count} deliveries to be applied again")
        else:
            print(register_webhook(ctx.provider(args.provider or settings.video_provider), args.url))
    except app_settings.SettingsError as error:
        print(f"settings: {error}", file=sys.stderr)
        return 1
    except problems.Problem as problem:
        print(f"{args.command}: {problem.detail}", file=sys.stderr)
        return 1
    except AzureError as error:
        print(f"{args.command}: storage is unavailable ({type(error).__name__})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
