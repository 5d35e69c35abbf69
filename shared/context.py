"""What the domain code needs from the outside world, built once per process and passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from shared import problems, times
from shared.limits import RateLimits
from shared.settings import Settings
from shared.storage import Storage

if TYPE_CHECKING:
    from shared.provider import ProviderClient


@dataclass
class Context:
    settings: Settings
    storage: Storage
    providers: dict[str, ProviderClient]
    clock: Callable[[], datetime] = times.now
    limits: RateLimits = field(default_factory=RateLimits)

    def provider(self, name: str) -> ProviderClient:
        """The client of the provider that serves a meeting (each meeting keeps its own)."""
        client = self.providers.get(name)
        if client is None:
            raise problems.Unavailable(f"The {name} provider is not configured on this deployment.", retry_after=60)
        return client
