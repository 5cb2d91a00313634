"""Binary tensor data vs JSON for one big FP32 tensor: end to end, then in-process.

    python loadtests/bigtensor.py [--mib 1] [--concurrency 4] [--duration 5] [--rounds 3]

End to end: one gateway (``configs/bigtensor.yaml``: a model that takes FP32 ``[1, N]`` and
answers its mean, so the wire format is what costs; ``SHADOWGATE_LOG=off``), and the same
tensor sent as tritonclient sends it, JSON (``"data"``: each float32 written as the Python
float it converts to, ~19 characters) or binary (``Inference-Header-Content-Length``, the
raw 4 bytes per value), the two kinds alternating within each round over the same
keep-alive connections (the Python generator: wrk cannot send binary bodies). The table
gives requests/s, p50 and p99, best of the rounds.

In-process: the gateway's own decode of each body (``v2.decode_request`` vs
``binary.decode_request_binary``, JSON parsing included) and encode of a response with a
tensor of the same size (``v2.encode_response`` vs ``binary.encode_response_binary``),
best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pygen
import servers
from loadgen import LoadResult, LoadSpec
from servers import ServerSpec
from workloads import Workload

from gateway.protocol import binary, v2
from gateway.protocol.tensors import InferenceResponse

LOADTESTS = Path(__file__).resolve().parent
PATH = "/v2/models/big/infer"


def bodies(x: np.ndarray[Any, Any]) -> dict[str, tuple[bytes, tuple[tuple[str, str], ...]]]:
    """The JSON and the binary request for ``x``, with their headers, as tritonclient
    builds them (binary: the output asked binary too, its default)."""
    tensor = {"name": "x", "shape": list(x.shape), "datatype": "FP32"}
    as_json = orjson.dumps({"inputs": [{**tensor, "data": x.ravel().tolist()}],
                            "outputs": [{"name": "y", "parameters": {"binary_data": False}}]})
    raw = binary.tensor_bytes(x)
    head = orjson.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]})
    return {
        "json": (as_json, (("Content-Type", "application/json"),)),
        "binary": (head + raw, (("Content-Type", "application/octet-stream"),
                                ("Inference-Header-Content-Length", str(len(head))))),
    }


def smoke(port: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
    request = urllib.request.Request(f"http://{servers.HOST}:{port}{PATH}", data=body,
                                     headers=dict(headers), method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        if reply.status != 200:
            raise SystemExit(f"{PATH} answered {reply.status}")
        reply.read()


def end_to_end(args: argparse.Namespace, kinds: dict[str, tuple[bytes, Any]]
               ) -> dict[str, list[LoadResult]]:
    spec = ServerSpec("gateway-big", (sys.executable, "-m", "gateway", "serve", "--config",
                                      str(LOADTESTS / "configs" / "bigtensor.yaml"), "--host",
                                      servers.HOST, "--port", "{port}", "--grpc-port", "off",
                                      "--log-level", "warning"),
                      "/v2/health/ready", state_env="SHADOWGATE_STATE_DIR",
                      env={"SHADOWGATE_LOG": "off"})
    results: dict[str, list[LoadResult]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="sg-big-") as tmp:
        server = servers.start(spec, LOADTESTS.parent, Path(tmp))
        try:
            servers.wait_ready(server, 60)
            for body, headers in kinds.values():
                smoke(server.port, body, headers)
            for round_ in range(args.rounds):
                order = list(kinds) if round_ % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    body, headers = kinds[kind]
                    load = LoadSpec(servers.HOST, server.port, Workload(PATH, (body,),
                                                                        headers=headers),
                                    args.concurrency, args.duration, 1.0, timeout_s=30.0)
                    result = pygen.run(load)
                    results[kind].append(result)
                    print(f"round {round_} {kind:<7} {result.rps:8.1f} req/s  p50 "
                          f"{result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors "
                          f"{result.errors}", file=sys.stderr, flush=True)
        finally:
            servers.stop(server)
    return results


def best_of(repeat: int, call: Callable[[], object]) -> float:
    """Seconds of the fastest of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def in_process(x: np.ndarray[Any, Any], kinds: dict[str, tuple[bytes, Any]],
               repeat: int) -> list[tuple[str, float, float]]:
    """(step, JSON ms, binary ms) of the gateway's decode and encode."""
    json_body = kinds["json"][0]
    binary_body, headers = kinds["binary"]
    length = dict(headers)["Inference-Header-Content-Length"]

    def decode_binary() -> object:
        head, tail = binary.split_body(binary_body, length)
        return binary.decode_request_binary(v2.parse_json(head), tail)

    response = InferenceResponse("big", "1", {"y": x})
    steps = [
        ("decode request", best_of(repeat, lambda: v2.decode_request(v2.parse_json(json_body))),
         best_of(repeat, decode_binary)),
        ("encode response", best_of(repeat, lambda: v2.encode_response(response)),
         best_of(repeat, lambda: binary.encode_response_binary(response, {"y"}))),
    ]
    return [(name, j * 1000, b * 1000) for name, j, b in steps]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=1.0, help="tensor size (FP32)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20, help="in-process runs per step")
    parser.add_argument("--skip-server", action="store_true", help="in-process only")
    args = parser.parse_args(argv)
    width = int(args.mib * (1 << 20) / 4)
    if width != 262_144 and not args.skip_server:
        raise SystemExit("configs/bigtensor.yaml's model takes 262144 values (1 MiB); "
                         "use --skip-server for other sizes")
    x = np.random.default_rng(0).random((1, width), dtype=np.float32)
    kinds = bodies(x)
    sizes = {k: len(b) for k, (b, _) in kinds.items()}
    print(f"FP32 [1, {width}]: JSON body {sizes['json'] / 1e6:.2f} MB, binary body "
          f"{sizes['binary'] / 1e6:.2f} MB")
    if not args.skip_server:
        results = end_to_end(args, kinds)
        print(f"\nbest of {args.rounds} round(s), {args.duration:g}s each, concurrency "
              f"{args.concurrency}")
        print(f"{'body':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'MB/s in':>8} "
              f"{'errors':>6}")
        for kind, runs in results.items():
            rps = max(r.rps for r in runs)
            print(f"{kind:>7} {rps:>8.1f} {min(r.p50_ms for r in runs):>8.2f} "
                  f"{min(r.p99_ms for r in runs):>8.2f} {rps * sizes[kind] / 1e6:>8.1f} "
                  f"{sum(r.errors for r in runs):>6}")
    print(f"\nin-process, best of {args.repeat}: {'JSON ms':>9} {'binary ms':>10}")
    for name, json_ms, binary_ms in in_process(x, kinds, args.repeat):
        print(f"{name:>30} {json_ms:>9.2f} {binary_ms:>10.3f}   ({json_ms / binary_ms:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
