"""What the remote-model tests share: sending the held-out rows in batches, and checking
that a remote model's record entry says what the local champion's says."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.helpers import Harness, v2_body

PATH = "/v2/models/breast-cancer/infer"


def post_in_batches(h: Harness, holdout: list[dict[str, Any]], sizes: list[int]
                    ) -> list[list[float]]:
    """The first ``sum(sizes)`` held-out rows, POSTed to the bundled deployment in
    consecutive requests of ``sizes`` rows (each answered 200); returns the last request's."""
    start, rows = 0, []
    for size in sizes:
        rows = [r["features"] for r in holdout[start:start + size]]
        start += size
        r = h.client.post(PATH, json=v2_body(rows))
        assert r.status_code == 200, r.text
    return rows


def assert_answers_like(local: dict[str, Any], far: dict[str, Any], rows: int) -> None:
    """``far`` (a remote model's entry) ran and has ``local``'s labels, one per row, and
    its class scores."""
    assert far["status"] == "ok", far
    assert far["output"]["label"] == local["output"]["label"]
    assert len(far["output"]["label"]) == rows
    np.testing.assert_allclose(np.asarray(far["output"]["scores"]),
                               np.asarray(local["output"]["scores"]), rtol=0, atol=1e-6)
