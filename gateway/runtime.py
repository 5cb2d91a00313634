"""What the routes need at run time; the app's lifespan builds it and puts it in app.state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from gateway.metrics import InFlight, Metrics
from gateway.reloader import Reloader
from gateway.rollout.controller import RolloutController
from gateway.service import Service
from gateway.serving import Serving
from gateway.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    serving: Serving
    redis: Redis | None = None  # when the prediction log is in Redis
    redis_url: str | None = None  # ... and where, for readers with their own connection
    reloader: Reloader | None = None  # when the config came from a file
    controller: RolloutController | None = None  # when rollouts can keep state (Redis)
    ready: bool = False
    # Checks an inference request's Authorization header (raises a GatewayError); None when
    # inference needs no token, so that the request path pays one attribute read.
    inference_check: Callable[[bytes | None], Any] | None = None
    in_flight: InFlight = field(init=False)

    def __post_init__(self) -> None:
        self.in_flight = InFlight(self.metrics.in_flight)

    @property
    def service(self) -> Service:
        assert self.serving.service is not None
        return self.serving.service

    @property
    def max_body_bytes(self) -> int:
        if self.settings.max_body_bytes is not None:
            return self.settings.max_body_bytes
        return self.service.snapshot.loaded.config.server.max_body_bytes
