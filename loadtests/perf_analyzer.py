"""Triton's perf_analyzer against a gateway, over HTTP and over gRPC (by hand; not in CI).

    python loadtests/perf_analyzer.py [--seconds 4] [--concurrency 1,16]
        [--model breast-cancer] [--config loadtests/configs/champion.yaml]
        [--http HOST:PORT --grpc HOST:PORT]       # a running gateway instead of a new one

perf_analyzer is the x86_64 binary that the ``tritonclient`` wheel (the dev extra) installs
beside this Python (the PyPI package ``perf-analyzer`` 0.1.0 is an empty placeholder). It
needs two shared libraries a plain machine lacks, fetched once into ``--cache`` (default
``/tmp/shadowgate-perf-analyzer``), nothing installed system-wide:

- ``libb64.so.0d``: the Debian package ``libb64-0d``, downloaded with ``apt-get download``
  and unpacked with ``dpkg -x`` (run ``apt-get update`` first on a fresh machine);
- ``libcudart.so.12``: the PyPI package ``nvidia-cuda-runtime-cu12``, in a throwaway venv
  (the CPU-only client never calls it, but the binary links it).

Without ``--http``/``--grpc`` it starts ``shadowgate serve`` on free ports (HTTP and gRPC),
runs perf_analyzer over each protocol for ``--seconds`` per concurrency, prints
perf_analyzer's summary lines and a table (infer/s, p50/p99 latency in ms), and stops the
gateway by PID. perf_analyzer reads the model's metadata and configuration, the server's
metadata and, since the gateway advertises ``statistics``, the model's statistics around
each measurement window; it exits non-zero on any error.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import servers
from servers import Server, ServerSpec

LOADTESTS = Path(__file__).resolve().parent
REPO_ROOT = LOADTESTS.parent
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "shadowgate-perf-analyzer"


def binary() -> Path:
    found = shutil.which("perf_analyzer") or str(Path(sys.executable).parent / "perf_analyzer")
    path = Path(found)
    if not path.exists():
        raise SystemExit("perf_analyzer not found: pip install 'tritonclient[all]' (the dev "
                         "extra has it) into this Python's environment")
    return path


def _run(argv: Sequence[str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def libraries(cache: Path) -> Path:
    """A directory holding libb64.so.0d and libcudart.so.12 (fetched once into ``cache``)."""
    lib = cache / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    if not (lib / "libb64.so.0d").exists():
        debs = cache / "debs"
        debs.mkdir(exist_ok=True)
        _run(["apt-get", "download", "libb64-0d"], cwd=debs)
        deb = next(debs.glob("libb64-0d_*.deb"))
        _run(["dpkg", "-x", str(deb), str(cache / "root")])
        found = next((cache / "root").rglob("libb64.so.0d"))
        shutil.copy2(found.resolve(), lib / "libb64.so.0d")
    if not (lib / "libcudart.so.12").exists():
        venv = cache / "venv"
        if not (venv / "bin" / "pip").exists():
            _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "pip"), "install", "-q", "nvidia-cuda-runtime-cu12"])
        found = next(venv.rglob("libcudart.so.12"))
        shutil.copy2(found.resolve(), lib / "libcudart.so.12")
    return lib


@contextlib.contextmanager
def gateway(config: Path, log_dir: Path) -> Iterator[tuple[Server, int]]:
    """``shadowgate serve`` on a free HTTP port and a free gRPC port; stopped by PID."""
    grpc_port = servers.free_port()
    spec = ServerSpec("gateway", (sys.executable, "-m", "gateway", "serve", "--config",
                                  str(config), "--host", servers.HOST, "--port", "{port}",
                                  "--grpc-port", str(grpc_port), "--log-level", "warning"),
                      "/v2/health/ready", state_env="SHADOWGATE_STATE_DIR")
    server = servers.start(spec, REPO_ROOT, log_dir)
    try:
        servers.wait_ready(server, 60)
        yield server, grpc_port
    finally:
        servers.stop(server)


def measure(pa: Path, lib: Path, protocol: str, url: str, model: str, concurrency: int,
            seconds: float, out: Path) -> dict[str, str]:
    """One perf_analyzer run; its CSV row (throughput, latency percentiles in us)."""
    argv = [str(pa), "-m", model, "-u", url, "-i", protocol,
            "--concurrency-range", str(concurrency),
            # Stabilise on the average latency, loosely: the machines this runs on are shared.
            "--measurement-interval", str(int(seconds * 1000 / 3)), "--max-trials", "10",
            "--stability-percentage", "50", "-f", str(out)]
    env = {**os.environ, "LD_LIBRARY_PATH": f"{lib}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    summary = [line for line in done.stdout.splitlines()
               if "throughput" in line or "Avg " in line or "error" in line.lower()]
    print(f"--- perf_analyzer -i {protocol} -u {url} -m {model} --concurrency-range "
          f"{concurrency}: exit {done.returncode}")
    print("\n".join(summary or done.stdout.splitlines()[-15:]))
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"perf_analyzer failed over {protocol} (exit {done.returncode})")
    with out.open() as rows:
        return next(csv.DictReader(rows))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement window x3")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated")
    parser.add_argument("--model", default="breast-cancer")
    parser.add_argument("--config", type=Path, default=LOADTESTS / "configs" / "champion.yaml")
    parser.add_argument("--http", help="HOST:PORT of a running gateway (with --grpc)")
    parser.add_argument("--grpc", help="HOST:PORT of its gRPC port")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    pa, lib = binary(), libraries(args.cache)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    rows: list[tuple[str, int, dict[str, str]]] = []
    with tempfile.TemporaryDirectory(prefix="sg-pa-") as tmp, contextlib.ExitStack() as stack:
        if args.http and args.grpc:
            urls = {"http": args.http, "grpc": args.grpc}
        else:
            server, grpc_port = stack.enter_context(gateway(args.config, Path(tmp)))
            urls = {"http": f"{servers.HOST}:{server.port}",
                    "grpc": f"{servers.HOST}:{grpc_port}"}
        for protocol, url in urls.items():
            for c in levels:
                row = measure(pa, lib, protocol, url, args.model, c, args.seconds,
                              Path(tmp) / f"{protocol}-{c}.csv")
                rows.append((protocol, c, row))
    print(f"\n{'protocol':>8} {'conc':>5} {'infer/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8}")
    for protocol, c, row in rows:
        print(f"{protocol:>8} {c:>5} {float(row['Inferences/Second']):>9.0f} "
              f"{int(row['p50 latency']) / 1000:>8.2f} {int(row['p90 latency']) / 1000:>8.2f} "
              f"{int(row['p99 latency']) / 1000:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
