"""How the dev host tells the developer what went wrong: the error for an app it cannot serve, and its own
stderr lines (tagged `[dev.host]`, apart from the app's logging)."""

from __future__ import annotations

import sys
import traceback

_TAG = "[dev.host]"


class DevHostError(Exception):
    """The app or its configuration cannot be served (the real host would refuse it too)."""


def warn(message: str) -> None:
    sys.stderr.write(f"{_TAG} {message}\n")
    sys.stderr.flush()


def warn_failure(what: str) -> None:
    """`what` failed: say so with the traceback of the exception being handled."""
    warn(f"{what}:\n" + traceback.format_exc().rstrip())
