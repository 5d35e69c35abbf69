"""Start the repo's pinned Azurite (npm) in memory, telemetry off, on free ports.

Used by `make run` (dev.stack) and by the test suite. Ports default to 0, which lets Azurite pick
free ones; the ports it reports are read back from its start-up lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public, documented, and only valid against the emulator.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")


def connection_string(blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def start(self, timeout: float = 30.0) -> Azurite:
        executable = ROOT / "node_modules" / ".bin" / "azurite"
        if not executable.exists():
            raise RuntimeError(f"{executable} is missing: run `npm ci` (make does this)")
        self.process = subprocess.Popen(
            [
                str(executable),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--silent",
                "--skipApiVersionCheck",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.blob_port),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(self.queue_port),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(self.table_port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            cwd=ROOT,
        )
        ports: dict[str, int] = {}
        lines: list[str] = []
        timer = threading.Timer(timeout, self.stop)
        timer.start()
        try:
            for line in self.process.stdout:
                lines.append(line.rstrip())
                match = _LISTENING.search(line)
                if match:
                    ports[match.group(1)] = int(match.group(2))
                if len(ports) == 3:
                    break
        finally:
            timer.cancel()
        if len(ports) != 3:
            self.stop()
            raise RuntimeError("Azurite did not start:\n" + "\n".join(lines[-20:]))
        self.blob_port, self.queue_port, self.table_port = ports["Blob"], ports["Queue"], ports["Table"]
        # Keep draining its output so a chatty Azurite can never block on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
