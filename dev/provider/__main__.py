"""`python -m dev.provider --port 7073`: the stand-in alone, until Ctrl-C or SIGTERM.

Credentials and preset names come from the environment over local.settings.json, as the app reads them:
the PRESET_* settings name presets of the VIDEO_PROVIDER's mode, which the stand-in has besides its defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from dev.provider.server import ProviderStandIn
from shared.settings import PROVIDERS, read_values

DEFAULTS = {
    "DYTE_ORG_ID": "local-org",
    "DYTE_API_KEY": "local-dyte-api-key",
    "REALTIMEKIT_ACCOUNT_ID": "local-account",
    "REALTIMEKIT_APP_ID": "local-app",
    "REALTIMEKIT_API_TOKEN": "local-realtimekit-api-token",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.provider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7073)
    parser.add_argument("--recording-bytes", type=int, help="size of each recording's file (default about 3 MB)")
    args = parser.parse_args(argv)
    values = read_values()
    setting = {name: values.get(name) or default for name, default in DEFAULTS.items()}
    mode = (values.get("VIDEO_PROVIDER") or "dyte").strip().lower()
    named = {role: values.get(f"PRESET_{role.upper()}", "").strip() for role in ("host", "participant", "guest")}
    stand_in = ProviderStandIn(
        dyte_org_id=setting["DYTE_ORG_ID"],
        dyte_api_key=setting["DYTE_API_KEY"],
        rtk_account_id=setting["REALTIMEKIT_ACCOUNT_ID"],
        rtk_app_id=setting["REALTIMEKIT_APP_ID"],
        rtk_api_token=setting["REALTIMEKIT_API_TOKEN"],
        presets={mode: {role: name for role, name in named.items() if name}} if mode in PROVIDERS else None,
    )
    if args.recording_bytes is not None:
        stand_in.set_switches(recording_size_bytes=args.recording_bytes)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with stand_in.start(host=args.host, port=args.port):
        print(f"provider stand-in on {stand_in.url} (Dyte at /v2, RealtimeKit at /client/v4)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
