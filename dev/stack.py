"""`make run`: the whole local stack in one command, stopped as one by Ctrl-C.

Azurite (in memory, telemetry off; the default ports when free, else free ones), the provider
stand-in, the token issuer and the app on the dev host (or `func start` when Core Tools is on the
PATH and MEETINGS_USE_FUNC=1). Ports of the stand-in, the issuer and the app come from
local.settings.json, so the settings file stays the single source of truth.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from dev.azurite import Azurite
from shared.settings import read_values

ROOT = Path(__file__).resolve().parent.parent


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for(port: int, process: subprocess.Popen, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with code {process.returncode}; see its output above")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not start listening on port {port}")


def _local_port(url: str) -> int:
    return urlsplit(url).port or 80


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Both explicitly: a shell starting this in the background leaves SIGINT ignored otherwise.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if not (ROOT / "local.settings.json").exists():
        shutil.copy(ROOT / "local.settings.json.example", ROOT / "local.settings.json")
        print("created local.settings.json from local.settings.json.example")
    values = read_values(local_settings=ROOT / "local.settings.json")
    host_section = json.loads((ROOT / "local.settings.json").read_text()).get("Host", {})
    app_port = int(host_section.get("LocalHttpPort", 7071))
    issuer_port = _local_port(values["AUTH_JWKS_URI"])
    provider_port = _local_port(values["DYTE_API_BASE_URL"])
    for name, port in (("app", app_port), ("issuer", issuer_port), ("provider stand-in", provider_port)):
        if not _free(port):
            raise SystemExit(f"port {port} for the {name} is taken: stop what uses it, or change local.settings.json")

    defaults = (10000, 10001, 10002)
    azurite = Azurite(*defaults) if all(_free(port) for port in defaults) else Azurite()
    processes: list[tuple[str, subprocess.Popen]] = []
    env = dict(os.environ)
    try:
        azurite.start()
        if (azurite.blob_port, azurite.queue_port, azurite.table_port) != defaults:
            # The environment wins over local.settings.json, for the app as for every other reader.
            env["AzureWebJobsStorage"] = azurite.connection_string
            print(f"azurite: default ports taken, using {azurite.queue_port} (queues), {azurite.table_port} (tables)")
        print(f"azurite: tables on {azurite.table_port}, queues on {azurite.queue_port} (in memory)")

        def spawn(name: str, args: list[str], port: int) -> None:
            process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, start_new_session=True)
            processes.append((name, process))
            _wait_for(port, process, name)

        spawn("issuer", ["dev.issuer", "serve", "--port", str(issuer_port)], issuer_port)
        spawn("provider stand-in", ["dev.provider", "--port", str(provider_port)], provider_port)
        if shutil.which("func") and os.environ.get("MEETINGS_USE_FUNC") == "1":
            process = subprocess.Popen(
                ["func", "start", "--port", str(app_port)], cwd=ROOT, env=env, start_new_session=True
            )
            processes.append(("func", process))
            _wait_for(app_port, process, "func start", timeout=120)
        else:
            spawn("app", ["dev.host", "--port", str(app_port)], app_port)

        base = f"http://127.0.0.1:{app_port}/api"
        print(
            "\nThe local stack is up. Try:\n\n"
            f"  curl -s {base}/health\n"
            "  TOKEN=$(.venv/bin/python -m dev.issuer token --email alice@contoso.test)\n"
            f'  curl -s -H "Authorization: Bearer $TOKEN" {base}/me\n\n'
            "Ctrl-C stops everything.",
            flush=True,
        )
        while all(process.poll() is None for _, process in processes):
            time.sleep(0.5)
        stopped = next(name for name, process in processes if process.poll() is not None)
        print(f"{stopped} stopped; shutting the stack down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for _, process in reversed(processes):
            _stop(process)
        azurite.stop()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
