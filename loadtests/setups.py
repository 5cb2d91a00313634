"""The setups bench.py can measure, and the servers they run against.

Setups that share a ``server`` share one running process (``v2`` and ``predict`` both hit the
champion-only gateway). ``floor-b`` is a second, independent floor: an A/A check of the noise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import peers
from servers import ServerSpec
from workloads import BodyKind

LOADTESTS = Path(__file__).resolve().parent
REPO_ROOT = LOADTESTS.parent
CONFIGS = LOADTESTS / "configs"
GATEWAY_HEALTH = "/v2/health/ready"
STATE_ENV = "SHADOWGATE_STATE_DIR"
BASELINE = "floor"
BENCH_TOKEN = "bench-inference-token-0123456789"  # a throwaway for the v2-token setup
DEFAULT_SETUPS = ("floor", "v2", "predict", "full-v2", "full-predict")


@dataclass(frozen=True)
class Setup:
    """One row family of the table: which server, which route, which body."""

    name: str
    server: str
    path: str
    body: BodyKind
    vary_users: bool
    about: str
    headers: tuple[tuple[str, str], ...] = ()


SETUPS = (
    Setup("floor", "floor", "/infer", "v2", False, "starlette + orjson + ORT, nothing else"),
    Setup("floor-b", "floor-b", "/infer", "v2", False, "a second floor process (A/A noise)"),
    Setup("http-only", "http-only", "/infer", "v2", False,
          "uvicorn + a raw ASGI app that answers a fixed body: the HTTP stack alone"),
    Setup("v2", "gateway-champion", "/v2/models/breast-cancer/infer", "v2", False,
          "gateway, champion only, V2 protocol"),
    Setup("predict", "gateway-champion", "/predict", "predict", False,
          "gateway, champion only, simple JSON"),
    Setup("full-v2", "gateway-full", "/v2/models/breast-cancer/infer", "v2", True,
          "gateway, 2 shadows at 100% + 10% canary, V2"),
    Setup("full-predict", "gateway-full", "/predict", "predict", True,
          "gateway, 2 shadows at 100% + 10% canary, simple JSON"),
    Setup("v2-token", "gateway-champion-token", "/v2/models/breast-cancer/infer", "v2", False,
          "as v2 with an inference token configured, sent as Authorization: Bearer",
          (("Authorization", f"Bearer {BENCH_TOKEN}"),)),
    Setup("v2-nolog", "gateway-champion-nolog", "/v2/models/breast-cancer/infer", "v2", False,
          "as v2 with SHADOWGATE_LOG=off: the request path without paired records"),
    Setup("v2-accesslog", "gateway-champion-accesslog", "/v2/models/breast-cancer/infer", "v2",
          False, "as v2 with SHADOWGATE_ACCESS_LOG=on: a logfmt line per request"),
    Setup("full-v2-nolog", "gateway-full-nolog", "/v2/models/breast-cancer/infer", "v2", True,
          "as full-v2 with SHADOWGATE_LOG=off: shadows and canary without paired records"),
    Setup("full-heavy", "gateway-heavy", "/v2/models/breast-cancer/infer", "v2", True,
          "champion + 2 shadows of bc-heavy at 100% (default isolation and CPU budget)"),
    Setup("mlserver", "mlserver", "/v2/models/bc-logreg/infer", "v2", False,
          "MLServer 1.7.1, minimal ONNX runtime, access log off (loadtests/peers.py)"),
    Setup("kserve", "kserve", "/v2/models/bc-logreg/infer", "v2", False,
          "KServe 0.21, minimal ONNX model, access log off (loadtests/peers.py)"),
)
PEERS = ("mlserver", "kserve")


def find(name: str) -> Setup:
    for setup in SETUPS:
        if setup.name == name:
            return setup
    known = ", ".join(s.name for s in SETUPS)
    raise SystemExit(f"unknown setup {name!r} (known: {known})")


def _floor(name: str, *extra: str) -> ServerSpec:
    argv = (sys.executable, str(LOADTESTS / "floor.py"), "--host", "127.0.0.1", "--port", "{port}",
            *extra)
    return ServerSpec(name, argv, "/health")


def _gateway(name: str, config: str, log: bool = True, token: bool = False,
             access_log: bool = False) -> ServerSpec:
    argv = (
        sys.executable, "-m", "gateway", "serve", "--config", str(CONFIGS / config),
        "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
    )
    env = {"SHADOWGATE_GRPC_PORT": "off"}  # several gateways at once: no fixed port
    if not log:
        env["SHADOWGATE_LOG"] = "off"
    if token:
        env["SHADOWGATE_INFERENCE_TOKEN"] = BENCH_TOKEN
    if access_log:  # lines go to the server's log file, as they would to a file or journal
        env["SHADOWGATE_ACCESS_LOG"] = "on"
    return ServerSpec(name, argv, GATEWAY_HEALTH, state_env=STATE_ENV, env=env)


def _peer(name: str) -> ServerSpec:
    if not peers.installed(peers.default_dir(), name):
        return ServerSpec(name, (), GATEWAY_HEALTH, unavailable=peers.missing_message(name))
    return ServerSpec(name, peers.command(name), GATEWAY_HEALTH)


def server_spec(name: str) -> ServerSpec:
    """The launch recipe of a server named in ``Setup.server``."""
    if name in PEERS:
        return _peer(name)
    if name.startswith("floor"):
        return _floor(name)
    if name == "http-only":
        return _floor(name, "--empty")
    config = {"champion": "champion.yaml", "full": "full.yaml", "heavy": "heavy.yaml"}.get(
        name.removeprefix("gateway-").removesuffix("-nolog").removesuffix("-token")
        .removesuffix("-accesslog"))
    if name.startswith("gateway-") and config is not None:
        return _gateway(name, config, log=not name.endswith("-nolog"),
                        token=name.endswith("-token"), access_log=name.endswith("-accesslog"))
    raise ValueError(f"no server named {name!r}")
