"""Where one V2 request's time goes in the gateway, stage by stage, without a profiler.

    python loadtests/request_stages.py [--config champion.yaml] [--log off|memory|redis]
                                       [--calls 20000]

Each stage of the request path is called on its own, in a loop, in-process (no HTTP): the
body's decoding, the routing call, ``Service.infer`` (routing, validation, the model, the
paired record and the shadows' jobs), the model call alone, the response's encoding and the
counters. Best of 5 loops of ``--calls`` each, in microseconds a call. cProfile charges every
Python call and inflates small functions several times over; these timings do not, so the
differences between stages are what a change can win. What ``Service.infer`` costs beyond
the model call is the gateway's own work for routing and the record.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import setups
import uvloop
import workloads
from inproc import running

from gateway.app import create_app
from gateway.service import routing_call
from gateway.settings import Settings
from gateway.snapshot import Deployment
from gateway.web import inference

ROUNDS = 5


def best_of(calls: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


async def best_of_async(calls: int, fn: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            await fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


async def measure(config: str, log: str, calls: int, deployment: str) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="sg-stages-") as state:
        settings = Settings(config=setups.CONFIGS / config, state_dir=Path(state), log=log)
        app: Any = create_app(settings)
        async with running(app):
            service = app.state.runtime.service
            target = service.target(deployment, None)
            if not isinstance(target, Deployment):
                raise SystemExit(f"{deployment!r} is not a deployment of {config}")
            body = workloads.v2_body(workloads.load_rows(rows=1)[0])
            headers = {b"content-type": b"application/json",
                       b"content-length": str(len(body)).encode()}
            inputs, choice = inference._decode_v2(body, headers, target)
            call = routing_call(target, "0" * 32, headers, b"", inputs.parameters)
            champion = target.champion
            answer = await service.infer(target, inputs, call)
            return [
                ("decode the body", best_of(
                    calls, lambda: inference._decode_v2(body, headers, target))),
                ("routing call", best_of(
                    calls, lambda: routing_call(target, "0" * 32, headers, b"",
                                                inputs.parameters))),
                ("Service.infer", await best_of_async(
                    calls, lambda: service.infer(target, inputs, call))),
                ("  of which the model call", await best_of_async(
                    calls, lambda: champion.infer(inputs.inputs, None))),
                ("encode the response", best_of(
                    calls, lambda: inference._encode_v2(answer, inputs, call, choice))),
                ("count the success", best_of(
                    calls, lambda: service.count_success(answer, inputs.rows, 0.001))),
            ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="champion.yaml",
                        help="a config in loadtests/configs (full.yaml: shadows and canary)")
    parser.add_argument("--log", choices=("off", "memory", "redis"), default="off",
                        help="where the paired records go (redis: the embedded one)")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--deployment", default="breast-cancer")
    args = parser.parse_args(argv)
    rows = uvloop.run(measure(args.config, args.log, args.calls, args.deployment))
    print(f"{args.config}, log {args.log}: best of {ROUNDS} x {args.calls:,} calls")
    for name, us in rows:
        print(f"  {name:28s} {us:8.2f} us")


if __name__ == "__main__":
    main()
