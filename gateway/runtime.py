"""What the routes need at run time; the app's lifespan builds it and puts it in app.state."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from gateway.metrics import InFlight, Metrics
from gateway.service import Service
from gateway.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    service: Service
    redis: Redis | None = None  # when the prediction log is in Redis
    ready: bool = False
    in_flight: InFlight = field(init=False)

    def __post_init__(self) -> None:
        self.in_flight = InFlight(self.metrics.in_flight)

    @property
    def max_body_bytes(self) -> int:
        if self.settings.max_body_bytes is not None:
            return self.settings.max_body_bytes
        return self.service.snapshot.loaded.config.server.max_body_bytes
