"""`python -m dev.host [--port PORT] [--cors ORIGINS]`: serve ./function_app.py like `func start`, until Ctrl-C or
SIGTERM; `--run-timer NAME` runs one timer in-process and exits with its outcome. The contract's local command
(section 6) and what `make run` and the test harness start."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback
from pathlib import Path

from dev.host import project
from dev.host.dev_host import DevHost
from dev.host.diagnostics import DevHostError


def _is_settings_error(exc: BaseException) -> bool:
    try:
        from shared.settings import SettingsError
    except ImportError:
        return type(exc).__name__ == "SettingsError"
    return isinstance(exc, SettingsError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.host",
        description="Serve ./function_app.py like `func start`: HTTP routes, queue triggers, admin API for timers.",
    )
    parser.add_argument("--port", type=int, help="port (default: local.settings.json Host.LocalHttpPort, else 7071)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--run-timer", metavar="NAME", help="run the timer function NAME once in-process and exit")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request to stderr")
    parser.add_argument("--cors", help="comma-separated allowed origins, over Host.CORS (as `func start --cors`)")
    parser.add_argument("--cors-credentials", action="store_true", help="allow credentials (`func start` flag)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    root = Path.cwd()
    level = project.log_level(root)
    if level is not None:
        logging.basicConfig(level=level, stream=sys.stderr, format="[%(asctime)s] %(name)s: %(message)s")
        logging.getLogger("azure").setLevel(max(level, logging.WARNING))
    try:
        cors = {"cors_origins": [o.strip() for o in args.cors.split(",") if o.strip()]} if args.cors else {}
        if args.cors_credentials:
            cors["cors_credentials"] = True
        host = DevHost.from_project(root, access_log=args.access_log, poll_queues=not args.run_timer, **cors)
    except DevHostError as exc:
        print(f"dev.host: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _is_settings_error(exc):
            print(f"settings: {exc}", file=sys.stderr)
            return 1
        raise

    if args.run_timer:
        try:
            function = host.function(args.run_timer)
            if not function.is_timer:
                raise DevHostError(f"{function.name} is not a timer function")
            host.run_function(function.name)
            return 0
        except DevHostError as exc:
            print(f"dev.host: {exc}", file=sys.stderr)
            return 1
        except Exception:
            traceback.print_exc()
            return 1
        finally:
            host.stop()

    port = args.port if args.port is not None else host.default_port
    try:
        host.start(args.host, port)
    except OSError as exc:
        print(f"dev.host: cannot listen on {args.host}:{port}: {exc}", file=sys.stderr)
        host.stop()
        return 1
    print(host.banner(), flush=True)
    while not stop.wait(0.5):
        pass
    host.stop()
    print("dev.host: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
