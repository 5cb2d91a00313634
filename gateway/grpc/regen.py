"""Regenerate the protobuf and gRPC modules beside this file from the .proto files.

    python -m gateway.grpc.regen      (from the repository root; needs grpcio-tools)

Runs ``grpc_tools.protoc`` with the repository root as include path, so generated imports
read ``from gateway.grpc import ...``, then points the two ``*_pb2.py`` at our own descriptor
pool (``gateway/grpc/pool.py``: why is written there).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROTOS = ["gateway/grpc/model_config.proto", "gateway/grpc/grpc_service.proto"]
DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
OWN_POOL = "from gateway.grpc.pool import POOL\nDESCRIPTOR = POOL.AddSerializedFile("


def protoc_command() -> list[str]:
    return [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", "--python_out=.",
            "--pyi_out=.", "--grpc_python_out=.", *PROTOS]


def use_own_pool(path: Path) -> None:
    text = path.read_text()
    if text.count(DEFAULT_POOL) != 1:
        raise SystemExit(f"{path}: expected one '{DEFAULT_POOL}' line; has protoc's output "
                         "changed? update gateway/grpc/regen.py")
    path.write_text(text.replace(DEFAULT_POOL, OWN_POOL))


def main() -> None:
    subprocess.run(protoc_command(), cwd=ROOT, check=True)
    # model_config.proto has no service: its *_pb2_grpc.py is empty.
    (HERE / "model_config_pb2_grpc.py").unlink(missing_ok=True)
    for name in ("model_config_pb2.py", "grpc_service_pb2.py"):
        use_own_pool(HERE / name)


if __name__ == "__main__":
    main()
