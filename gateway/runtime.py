"""What the routes need at run time; the app's lifespan builds it and puts it in app.state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from gateway.accesslog import AccessLog
from gateway.errors import GatewayError
from gateway.metrics import InFlight, Metrics
from gateway.reloader import Reloader
from gateway.rollout.controller import RolloutController
from gateway.service import Answer, Service, Target
from gateway.serving import Serving
from gateway.settings import Settings
from gateway.snapshot import Snapshot


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
    access: AccessLog = field(init=False)

    def __post_init__(self) -> None:
        self.in_flight = InFlight(self.metrics.in_flight)
        self.access = AccessLog(self.settings.access_log, self.settings.access_log_sample)

    @property
    def service(self) -> Service:
        assert self.serving.service is not None
        return self.serving.service

    @property
    def max_body_bytes(self) -> int:
        if self.settings.max_body_bytes is not None:
            return self.settings.max_body_bytes
        return self.service.snapshot.loaded.config.server.max_body_bytes

    # One inference request's end, the same for HTTP and gRPC: counted once, and logged.

    def answered(self, proto: str, method: str, path: str, request_id: str, answer: Answer,
                 rows: int, elapsed_s: float) -> None:
        """Counted as a success (``Service.count_success``), and an access line when the
        access log is on."""
        self.service.count_success(answer, rows, elapsed_s)
        if self.access.enabled:
            backend = answer.backend
            self.access.success(proto, method, path, 200, elapsed_s, request_id, backend.name,
                                backend.version, answer.variant)

    def refused(self, proto: str, method: str, path: str, request_id: str, snap: Snapshot,
                target: Target | None, exc: GatewayError, elapsed_s: float
                ) -> tuple[str, str] | None:
        """Counted as a failure (``Service.count_failure``) and always logged; returns the
        model that ran and failed (name, version), which the answer may name, else None."""
        self.service.count_failure(snap, target, exc, elapsed_s)
        ran = exc.model if exc.model_ran else None
        self.access.failure(proto, method, path, exc.status_code, elapsed_s, request_id,
                            exc.code, exc.message, *(ran or (None, None)))
        return ran

