from __future__ import annotations

import orjson
import pytest

from tests.helpers import HOLDOUT
from tests.redis_fixture import redis_binaries, redis_server  # noqa: F401


@pytest.fixture(scope="session")
def holdout() -> list[dict[str, object]]:
    """The bundled held-out rows: {"row", "features": [30 floats], "label", "label_name"}."""
    return [orjson.loads(line) for line in HOLDOUT.read_bytes().splitlines() if line.strip()]
