"""Peers for the benchmark: MLServer and KServe, each serving the champion with a minimal runtime.

    python loadtests/peers.py install [--dir DIR] [--only mlserver,kserve]
    python loadtests/peers.py status [--dir DIR]
    python loadtests/peers.py serve mlserver --port 8090 [--dir DIR]   # one, in the foreground

Each peer gets a virtual environment of its own under ``--dir`` (default
``$SHADOWGATE_PEERS_DIR`` or ``~/.cache/shadowgate-peers``, outside the repository: MLServer
1.7.1 pins a protobuf that the ``dev`` extra cannot share) with a pinned release, onnxruntime,
uvloop and httptools, and a launcher that serves ``models/bc-logreg/1/model.onnx`` under the
name ``bc-logreg`` with the least each framework allows: a custom runtime calling onnxruntime
directly (one session, one thread, as ``floor.py`` and the gateway do), access logs off,
no gRPC or metrics server where it can be turned off, bound to 127.0.0.1. ``bench.py`` then
measures them as the setups ``mlserver`` and ``kserve`` (the same V2 body as ``v2``); a setup
whose peer is not installed is reported as failed with the command to install it.

Not run by CI: it downloads the peers from the package index.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = REPO_ROOT / "models" / "bc-logreg" / "1" / "model.onnx"
MODEL_NAME = "bc-logreg"
COMMON = ("onnxruntime", "numpy", "uvloop", "httptools")


@dataclass(frozen=True)
class Peer:
    name: str
    packages: tuple[str, ...]
    launcher: str  # source of serve.py, run by the peer's own Python


MLSERVER_LAUNCHER = '''"""MLServer: one ONNX model, a minimal custom runtime (by peers.py)."""
import argparse, json, os, socket, sys, tempfile

RUNTIME = """
import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

DATATYPES = {"tensor(int64)": "INT64", "tensor(float)": "FP32"}


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.settings.parameters.uri, options,
                                            providers=["CPUExecutionProvider"])
        self.in_name = self.session.get_inputs()[0].name
        self.outs = [(o.name, DATATYPES[o.type]) for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        tensor = payload.inputs[0]
        data = tensor.data.root if hasattr(tensor.data, "root") else tensor.data
        batch = np.asarray(data, dtype=np.float32).reshape(tensor.shape)
        results = self.session.run([n for n, _ in self.outs], {self.in_name: batch})
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[
            ResponseOutput(name=n, shape=list(v.shape), datatype=t, data=v.ravel().tolist())
            for (n, t), v in zip(self.outs, results)])
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", default="bc-logreg")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="sg-mlserver-")
    with open(os.path.join(folder, "onnx_runtime.py"), "w") as f:
        f.write(RUNTIME)
    settings = {"debug": False, "host": "127.0.0.1", "http_port": args.port,
                "grpc_port": free_port(), "metrics_endpoint": None, "parallel_workers": 0}
    with open(os.path.join(folder, "settings.json"), "w") as f:
        json.dump(settings, f)
    model_dir = os.path.join(folder, args.name)
    os.mkdir(model_dir)
    with open(os.path.join(model_dir, "model-settings.json"), "w") as f:
        json.dump({"name": args.name, "implementation": "onnx_runtime.OnnxRuntime",
                   "parameters": {"uri": args.model}}, f)
    os.chdir(folder)
    sys.path.insert(0, folder)
    mlserver = os.path.join(os.path.dirname(sys.executable), "mlserver")
    os.execv(mlserver, [mlserver, "start", folder])


main()
'''

KSERVE_LAUNCHER = '''"""KServe: one ONNX model, a minimal custom model (by peers.py)."""
import argparse, logging, sys, uuid

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--name", default="bc-logreg")
args = parser.parse_args()
# kserve parses sys.argv when imported: give it its own flags only.
sys.argv = [sys.argv[0], "--http_port", str(args.port), "--enable_grpc", "false",
            "--enable_latency_logging", "false", "--workers", "1"]

import numpy as np
import onnxruntime as ort
import uvicorn
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
import kserve.protocol.rest.server as rest_server

DATATYPES = {"tensor(int64)": "INT64", "tensor(float)": "FP32"}


class LocalConfig(uvicorn.Config):
    """KServe binds 0.0.0.0 unconditionally; the benchmark serves on 127.0.0.1 only."""

    def __init__(self, *a, **kw):
        kw["host"] = "127.0.0.1"
        super().__init__(*a, **kw)


rest_server.uvicorn.Config = LocalConfig


class OnnxModel(Model):
    def __init__(self, name, path):
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.in_name = self.session.get_inputs()[0].name
        self.outs = [(o.name, DATATYPES[o.type]) for o in self.session.get_outputs()]
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        batch = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        results = self.session.run([n for n, _ in self.outs], {self.in_name: batch})
        return InferResponse(model_name=self.name, response_id=payload.id or str(uuid.uuid4()),
                             infer_outputs=[
            InferOutput(name=n, shape=list(v.shape), datatype=t, data=v.ravel().tolist())
            for (n, t), v in zip(self.outs, results)])


server = ModelServer()
# Access logs off: uvicorn's, and kserve.trace, which KServe's timing middleware writes a
# line to for every request (the middleware itself stays: it is part of KServe).
for name in ("uvicorn.access", "kserve.trace"):
    access = logging.getLogger(name)
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
server.start([OnnxModel(args.name, args.model)])
'''

PEERS = {
    "mlserver": Peer("mlserver", ("mlserver==1.7.1", *COMMON), MLSERVER_LAUNCHER),
    "kserve": Peer("kserve", ("kserve==0.21.0", *COMMON), KSERVE_LAUNCHER),
}
MARKER = "installed.json"


def default_dir() -> Path:
    configured = os.environ.get("SHADOWGATE_PEERS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "shadowgate-peers"


def python(directory: Path, name: str) -> Path:
    return directory / name / "venv" / "bin" / "python"


def installed(directory: Path, name: str) -> bool:
    """The peer's venv, its launcher and the marker written after a successful install."""
    home = directory / name
    return (home / MARKER).is_file() and (home / "serve.py").is_file() and \
        python(directory, name).exists()


def missing_message(name: str) -> str:
    return (f"peer {name!r} is not installed under {default_dir()}: run "
            f"`python loadtests/peers.py install --only {name}` (or set SHADOWGATE_PEERS_DIR)")


def command(name: str, directory: Path | None = None) -> tuple[str, ...]:
    """argv that serves the champion with this peer on ``{port}`` (bench.py's ServerSpec);
    the launcher is rewritten from this file first, so that it matches the checkout."""
    directory = directory or default_dir()
    (directory / name / "serve.py").write_text(PEERS[name].launcher)
    return (str(python(directory, name)), str(directory / name / "serve.py"), "--port",
            "{port}", "--model", str(MODEL), "--name", MODEL_NAME)


def install(directory: Path, name: str) -> None:
    peer = PEERS[name]
    home = directory / name
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).unlink(missing_ok=True)
    print(f"{name}: virtual environment in {home / 'venv'}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=False).create(home / "venv")
    pip = [str(python(directory, name)), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *peer.packages], check=True)
    (home / "serve.py").write_text(peer.launcher)
    frozen = subprocess.run([str(python(directory, name)), "-m", "pip", "freeze"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    (home / MARKER).write_text(json.dumps({"packages": peer.packages, "freeze": frozen},
                                          indent=1))
    print(f"{name}: installed ({next((p for p in frozen if p.startswith(name)), '?')})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("install", "status", "serve"))
    parser.add_argument("peer", nargs="?", choices=sorted(PEERS))
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--only", default=",".join(PEERS))
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    directory = (args.dir or default_dir()).expanduser().resolve()
    if args.dir is not None:
        os.environ["SHADOWGATE_PEERS_DIR"] = str(directory)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if args.action == "install":
        for name in names:
            install(directory, name)
        return 0
    if args.action == "status":
        for name in PEERS:
            print(f"{name}: {'installed' if installed(directory, name) else 'missing'} "
                  f"({directory / name})")
        return 0
    if args.peer is None or not installed(directory, args.peer):
        print(missing_message(args.peer or "?"), file=sys.stderr)
        return 1
    argv_ = [a.replace("{port}", str(args.port)) for a in command(args.peer, directory)]
    return subprocess.run(argv_, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
