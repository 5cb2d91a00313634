"""Process settings from CLI flags and ``SHADOWGATE_*`` environment variables.

Flags win over the environment, which wins over the defaults. The deployment config file
(models, deployments, rollout) is separate: see gateway/config/schema.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

LogMode = Literal["redis", "memory", "off"]


@dataclass(frozen=True)
class Settings:
    config: Path = Path("config/example.yaml")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    redis_url: str | None = None  # None: start the embedded Redis under state_dir
    state_dir: Path = Path(".shadowgate")
    log: LogMode = "redis"  # where paired records go
    max_body_bytes: int | None = None  # overrides server.max_body_bytes of the config
    log_level: str = "info"
    flush_interval_s: float = 0.05  # most a kill -9 can lose of the prediction log
    replay_rate: float = 5000.0  # records/s live + replayed writes may reach after an outage
    spool_max_bytes: int = 1 << 30
    shutdown_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``SHADOWGATE_<FIELD>`` variables, then non-None overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"SHADOWGATE_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw)
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _convert(name: str, raw: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if "Path" in str(kind):
            return Path(raw)
        if "float" in str(kind):
            return float(raw)
        if "int" in str(kind):
            return int(raw)
    except ValueError:
        raise ValueError(f"SHADOWGATE_{name.upper()}: expected a number, got {raw!r}") from None
    if name == "log" and raw not in ("redis", "memory", "off"):
        raise ValueError(f"SHADOWGATE_LOG: expected redis, memory or off, got {raw!r}")
    return raw
