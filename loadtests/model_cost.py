"""What one call of each bundled model costs: one row (a request) and a 64-row micro-batch.

    python loadtests/model_cost.py [--calls 2000] [--models bc-logreg,bc-gbt,bc-rf,bc-heavy]

Each model runs in one single-threaded onnxruntime session, as the gateway configures it.
Costs are CPU time of the calling thread (``time.thread_time``), median over ``--calls``
calls, so that a busy machine (which stretches wall time) does not change them much; the
ratio column compares each model with the first one (the champion).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = REPO_ROOT / "models"
BATCH = 64


def session(name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODELS / name / "1" / "model.onnx"), options,
                                providers=["CPUExecutionProvider"])


def cost_us(sess: ort.InferenceSession, rows: np.ndarray, calls: int) -> float:
    """Median CPU microseconds of one ``run`` on ``rows``; batched timing keeps the clock's
    resolution out of it (10 calls per sample)."""
    for _ in range(20):
        sess.run(None, {"input": rows})
    samples = []
    for _ in range(max(1, calls // 10)):
        start = time.thread_time()
        for _ in range(10):
            sess.run(None, {"input": rows})
        samples.append((time.thread_time() - start) / 10)
    return statistics.median(samples) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--models", default="bc-logreg,bc-gbt,bc-rf,bc-heavy")
    args = parser.parse_args(argv)
    lines = (MODELS / "samples" / "breast-cancer-holdout.jsonl").read_text().splitlines()
    data = np.asarray([json.loads(line)["features"] for line in lines], dtype=np.float32)
    one, batch = data[:1], np.resize(data, (BATCH, data.shape[1]))
    print(f"{'model':>10}  {'1 row us':>9}  {'x champ':>8}  {'64 rows us':>11}  {'x champ':>8}"
          f"  {'us/row in 64':>13}")
    base: tuple[float, float] | None = None
    for name in args.models.split(","):
        sess = session(name)
        single, many = cost_us(sess, one, args.calls), cost_us(sess, batch, args.calls // 4)
        base = base or (single, many)
        print(f"{name:>10}  {single:9.1f}  {single / base[0]:7.1f}x  {many:11.1f}  "
              f"{many / base[1]:7.1f}x  {many / BATCH:13.2f}")


if __name__ == "__main__":
    main()
