"""The provider presets the app hands out, and an operator command that checks (and creates) them.

python -m shared.presets check [--create] [--provider dyte|realtimekit]

Every role maps to a preset named by the settings (contract section 2): owner and host to PRESET_HOST,
participant to PRESET_PARTICIPANT, guest to PRESET_GUEST. What the product relies on in each:

- host: `accept_waiting_requests` on (hosts admit guests), no waiting room;
- participant: no waiting room;
- guest: `waiting_room_type` ON_PRIVILEGED_USER_ENTRY, held until a privileged user (a host) admits them.

`check` looks the presets up at each configured provider (or the one named) and prints one line per
preset: `ok`, `created` (with `--create`), `missing`, or `differs` (it exists, but one of the settings
above is not as the product needs it; the command never changes an existing preset). Exit code 0 when
every preset is usable, 1 otherwise, 2 for bad arguments. Settings come from the environment over
local.settings.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from shared import access

ROLES = access.PRESET_KINDS
# The permissions that make each role what the product promises; checked on existing presets too.
REQUIRED = {
    "host": {"accept_waiting_requests": True, "waiting_room_type": "SKIP"},
    "participant": {"waiting_room_type": "SKIP"},
    "guest": {"waiting_room_type": "ON_PRIVILEGED_USER_ENTRY"},
}


def body(role: str, name: str) -> dict[str, Any]:
    """The `POST /presets` body of a group-call preset for `role` (Dyte's `Preset` schema; RealtimeKit's is the same).

    Every field both documents require is given explicitly, so nothing depends on a provider default.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    host = access.moderates(role)
    produce = {"can_produce": "ALLOWED"}
    permissions = {
        "accept_waiting_requests": host,
        "can_accept_production_requests": host,
        "can_change_participant_permissions": host,
        # The display name comes from the user's directory entry; attendance shows what the provider reports.
        "can_edit_display_name": False,
        "can_livestream": False,
        "can_record": host,
        "can_spotlight": host,
        "chat": {
            "public": {"can_send": True, "text": True, "files": True},
            "private": {"can_send": True, "can_receive": True, "text": True, "files": True},
        },
        "connected_meetings": {
            "can_alter_connected_meetings": False,
            "can_switch_connected_meetings": False,
            "can_switch_to_parent_meeting": False,
        },
        "disable_participant_audio": host,
        "disable_participant_screensharing": host,
        "disable_participant_video": host,
        "hidden_participant": False,
        "is_recorder": False,
        "kick_participant": host,
        "media": {"audio": produce, "video": produce, "screenshare": produce},
        "pin_participant": host,
        "plugins": {
            "can_close": host,
            "can_start": host,
            "can_edit_config": host,
            "config": {"access_control": "FULL_ACCESS" if host else "VIEW_ONLY", "handles_view_only": True},
        },
        "polls": {"can_create": host, "can_vote": True, "can_view": True},
        "recorder_type": "NONE",
        "show_participant_list": True,
        "waiting_room_type": REQUIRED[role]["waiting_room_type"],
    }
    return {
        "name": name,
        "config": {
            "view_type": "GROUP_CALL",
            "max_video_streams": {"mobile": 6, "desktop": 25},
            "max_screenshare_count": 1,
            "media": {
                "audio": {"enable_stereo": False, "enable_high_bitrate": False},
                "video": {"quality": "hd", "frame_rate": 30},
                "screenshare": {"quality": "hd", "frame_rate": 5},
            },
        },
        "permissions": permissions,
        # Dyte's documented default design tokens: the UI kit's own look.
        "ui": {
            "design_tokens": {
                "border_radius": "rounded",
                "border_width": "thin",
                "spacing_base": 4,
                "theme": "dark",
                "colors": {
                    "brand": {"300": "#844d1c", "400": "#9d5b22", "500": "#b56927", "600": "#d37c30", "700": "#d9904f"},
                    "background": {
                        "600": "#222222",
                        "700": "#1f1f1f",
                        "800": "#1b1b1b",
                        "900": "#181818",
                        "1000": "#141414",
                    },
                    "danger": "#FF2D2D",
                    "text": "#EEEEEE",
                    "text_on_brand": "#EEEEEE",
                    "success": "#62A504",
                    "video_bg": "#191919",
                    "warning": "#FFCD07",
                },
                "logo": "",
            }
        },
    }


def differences(role: str, permissions: Mapping[str, Any] | None) -> list[str]:
    """What in an existing preset's permissions breaks what the product needs of `role` ([] when none)."""
    if permissions is None:
        return []  # the provider did not report them: nothing to hold against it
    return [
        f"{name} is {permissions.get(name)!r}, expected {wanted!r}"
        for name, wanted in REQUIRED[role].items()
        if permissions.get(name) != wanted
    ]


def check(client: Any, names: Mapping[str, str], create: bool) -> list[tuple[bool, str]]:
    """(usable, line) for each role's preset (`names`: role -> preset name) at one provider."""
    existing = {preset.name: preset for preset in client.list_presets()}
    results = []
    for role in ROLES:
        name = names[role]
        where = f"{client.name} {name} ({role})"
        found = existing.get(name)
        if found is None:
            if not create:
                results.append((False, f"{where}: missing; run with --create to create it"))
                continue
            created = client.create_preset(body(role, name))
            existing[name] = created
            results.append((True, f"{where}: created ({_describe(role)})"))
            continue
        wrong = differences(role, client.get_preset(found.id).permissions)
        if wrong:
            results.append((False, f"{where}: differs: {'; '.join(wrong)} (fix it in the provider's dashboard)"))
        else:
            results.append((True, f"{where}: ok"))
    return results


def _describe(role: str) -> str:
    return {
        "host": "admits from the waiting room, no waiting room",
        "participant": "no waiting room",
        "guest": "waits until a host admits them",
    }[role]


def main(argv: list[str] | None = None) -> int:
    from shared import problems
    from shared import settings as app_settings
    from shared.provider import clients_from_settings

    parser = argparse.ArgumentParser(prog="python -m shared.presets", description="Provider preset operations.")
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="check that the presets the settings name exist at the provider")
    checking.add_argument("--create", action="store_true", help="create the missing ones with the right settings")
    checking.add_argument("--provider", choices=app_settings.PROVIDERS, help="default: every configured provider")
    args = parser.parse_args(argv)
    try:
        settings = app_settings.load()
    except app_settings.SettingsError as error:
        print(f"settings: {error}", file=sys.stderr)
        return 1
    clients = clients_from_settings(settings)
    if args.provider is not None and args.provider not in clients:
        print(f"check: {args.provider} is not configured (its credentials are not set)", file=sys.stderr)
        return 1
    usable = True
    for name in [args.provider] if args.provider else sorted(clients):
        names = settings.presets_for(name)
        try:
            results = check(clients[name], names, args.create)
        except problems.Problem as problem:
            print(f"{name}: {problem.detail}", file=sys.stderr)
            usable = False
            continue
        for ok, line in results:
            print(line)
            usable = usable and ok
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main())
