"""What the domain code needs from the outside world, built once per process and passed in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from shared import problems, times
from shared.limits import RateLimits
from shared.provider_meetings import Mappings
from shared.settings import Settings
from shared.storage import Storage

if TYPE_CHECKING:
    from shared.closed_accounts import ClosedAccounts
    from shared.graph import Graph
    from shared.provider import ProviderClient


@dataclass
class Context:
    settings: Settings
    storage: Storage
    providers: dict[str, ProviderClient]
    clock: Callable[[], datetime] = times.now
    limits: RateLimits = field(default_factory=RateLimits)
    closed: ClosedAccounts | None = None
    graph: Graph | None = None
    mappings: Mappings = field(default_factory=Mappings)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def provider(self, name: str) -> ProviderClient:
        """The client of the provider that serves a meeting (each meeting keeps its own)."""
        client = self.providers.get(name)
        if client is None:
            raise problems.Unavailable(f"The {name} provider is not configured on this deployment.", retry_after=60)
        return client

    def mail(self) -> Graph:
        """The Graph client that sends invitations: one per process, so one cached token for every send."""
        with self._lock:
            if self.graph is None:
                from shared.graph import Graph  # imported here: only the sender needs it (cold start)

                if self.settings.mail is None:
                    raise RuntimeError("email is off (MAIL_SENDER is empty)")
                self.graph = Graph(self.settings.mail)
            return self.graph
