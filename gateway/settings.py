"""Process settings from CLI flags and ``SHADOWGATE_*`` environment variables.

Flags win over the environment, which wins over the defaults. The deployment config file
(models, deployments, rollout) is separate: see gateway/config/schema.py.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from gateway.accesslog import AccessMode

LogMode = Literal["redis", "memory", "off"]


class Settings(BaseModel):
    """One field per ``SHADOWGATE_<NAME>`` variable (and, for the common ones, a flag)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: Path = Field(Path("config/example.yaml"), description="the deployment config file")
    host: str = Field("127.0.0.1", description="bind address")
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int = Field(8001, ge=0, le=65535, description="V2 gRPC port (Triton's "
                           "default), on the same host; 0 or 'off': no gRPC")
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    redis_url: str | None = Field(None, description="None: the embedded Redis under state_dir")
    state_dir: Path = Field(Path(".shadowgate"), description="embedded Redis data and spool")
    log: LogMode = Field("redis", description="where paired records go")
    max_body_bytes: int | None = Field(None, ge=1, description="overrides server.max_body_bytes")
    log_level: str = "info"
    access_log: AccessMode = Field("off", description="a line per request (logfmt or JSON); "
                                   "failed inference requests are logged whatever this says")
    access_log_sample: float = Field(1.0, ge=0, le=1, description="share of successful "
                                     "requests the access log writes")
    flush_interval_s: float = Field(0.05, gt=0, description="most a kill -9 can lose of the log")
    replay_rate: float = Field(5000.0, gt=0, description="records/s live + replayed writes may "
                               "reach after an outage")
    spool_max_bytes: int = Field(1 << 30, ge=1)
    redis_nice: int = Field(5, ge=0, le=19, description="scheduling priority of the embedded "
                            "Redis and its AOF rewrites (off the request path: on a busy "
                            "machine the gateway is served first)")
    redis_args: str = Field("", description="extra redis-server arguments for the embedded "
                            "Redis, e.g. '--auto-aof-rewrite-min-size 1gb' (they win)")
    shutdown_timeout_s: float = Field(10.0, ge=0)
    watch_config: bool = Field(True, description="reload the config file when it changes")
    rollout_controller: bool = Field(True, description="run the rollout controller here (it "
                                     "acts only while it holds the lock in Redis)")
    rollout_lock_ttl_s: float = Field(10.0, gt=0, description="how long the acting "
                                      "controller's lock outlives its last renewal")
    # Who may call what (gateway/web/auth.py; the README's Security section).
    feedback_token: SecretStr | None = Field(None, description="bearer token for POST /feedback")
    reports_token: SecretStr | None = Field(None, description="bearer token for GET /reports")
    admin_token: SecretStr | None = Field(None, description="bearer token for /admin/")
    inference_token: SecretStr | None = Field(None, description="bearer token for inference; "
                                              "None: inference is open")
    tokens_file: Path | None = Field(None, description="YAML list of named tokens with scopes")
    # Feedback integrity and abuse limits.
    feedback_orphan_window_s: float = Field(600.0, ge=0, description="how old a label for a "
                                            "request with no record yet may be")
    feedback_rate: float = Field(2000.0, gt=0, description="labels/s per token name")
    feedback_burst: int = Field(20_000, ge=1, description="labels a token may post at once")
    # HTTP limits of `shadowgate serve` (gateway/web/limits.py, gateway/web/drain.py).
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="request line + headers")
    header_timeout_s: float = Field(10.0, gt=0, description="to receive a request's headers")
    body_timeout_s: float = Field(30.0, gt=0, description="to receive a request's body")
    max_connections: int = Field(2048, ge=1, description="open connections; more get 503")
    keep_alive_s: float = Field(5.0, gt=0, description="idle keep-alive connections close")
    drain_s: float = Field(0.0, ge=0, description="on SIGTERM: seconds not ready but serving")

    @field_validator("grpc_port", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return 0 if isinstance(value, str) and value.strip().lower() == "off" else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``SHADOWGATE_<FIELD>`` variables, then non-None overrides (flags).

        Raises ValueError naming the variable, what it expects and what it got.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(_variable(name))
            if raw:
                values[name] = raw
        flags = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls.model_validate(values | flags)
        except ValidationError as exc:
            raise ValueError("; ".join(
                _explain(str(e["loc"][0]), e, from_env=str(e["loc"][0]) not in flags)
                for e in exc.errors())) from None


def _variable(name: str) -> str:
    return f"SHADOWGATE_{name.upper()}"


def _explain(name: str, error: Any, *, from_env: bool) -> str:
    where = _variable(name) if from_env else name
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    annotation = typing.get_type_hints(Settings)[name]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    kind = args[0] if args and typing.get_origin(annotation) is not Literal else annotation
    expected = {int: "an integer", float: "a number", Path: "a path", str: "a string"}.get(
        kind, "")
    if typing.get_origin(kind) is Literal:
        expected = "one of " + ", ".join(map(str, typing.get_args(kind)))
    if error["type"].endswith(("_than", "_than_equal")):
        expected = f"{expected} {error['msg'].removeprefix('Input should be ')}".strip()
    return f"{where}: expected {expected or error['msg']}, got {error['input']!r}"
