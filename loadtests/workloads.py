"""Request bodies for the load tests, built once from the held-out sample file.

A workload is a cycle of fully formed requests (path, headers, body); both load generators
send them in order, round-robin over all connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = REPO_ROOT / "models" / "samples" / "breast-cancer-holdout.jsonl"
DEFAULT_ROWS = 64
DEFAULT_USERS = 5000
USER_HEADER = "x-user-id"

BodyKind = Literal["v2", "predict"]


@dataclass(frozen=True)
class Workload:
    """What one setup sends: a fixed path, and a cycle of (headers, body) pairs."""

    path: str
    bodies: tuple[bytes, ...]
    user_header: str | None = None
    users: int = DEFAULT_USERS
    headers: tuple[tuple[str, str], ...] = ()  # sent on every request (e.g. Authorization)

    def cycle_length(self) -> int:
        return self.users if self.user_header else len(self.bodies)

    def requests(self) -> Iterator[tuple[dict[str, str], bytes]]:
        """One full cycle: request ``i`` carries body ``i mod rows`` and user ``user-i``."""
        for i in range(self.cycle_length()):
            headers = {"Content-Type": "application/json", **dict(self.headers)}
            if self.user_header:
                headers[self.user_header] = f"user-{i}"
            yield headers, self.bodies[i % len(self.bodies)]

    def raw(self, host: str, port: int) -> list[bytes]:
        """The cycle as pre-serialised HTTP/1.1 keep-alive requests."""
        return [_raw_request(self.path, host, port, h, b) for h, b in self.requests()]


def _raw_request(path: str, host: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def load_rows(path: Path = SAMPLES, rows: int = DEFAULT_ROWS) -> list[list[float]]:
    """The first ``rows`` feature vectors of the held-out sample file."""
    features: list[list[float]] = []
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                features.append(orjson.loads(line)["features"])
            if len(features) == rows:
                break
    if not features:
        raise ValueError(f"no sample rows in {path}")
    return features


def v2_body(row: list[float]) -> bytes:
    tensor = {"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}
    return orjson.dumps({"inputs": [tensor]})


def predict_body(row: list[float]) -> bytes:
    return orjson.dumps({"instances": [row]})


def build(path: str, kind: BodyKind, rows: list[list[float]], vary_users: bool,
          headers: tuple[tuple[str, str], ...] = ()) -> Workload:
    encode = v2_body if kind == "v2" else predict_body
    bodies = tuple(encode(row) for row in rows)
    return Workload(path, bodies, USER_HEADER if vary_users else None, headers=headers)
