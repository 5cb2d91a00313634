"""The README's tritonclient snippet, run as written against a live gateway on the bundled
example config (only the ports and the sample file's path are this test's)."""

from __future__ import annotations

import contextlib
import gc
import io
import re

import numpy as np
import onnxruntime as ort
import orjson
import yaml

from tests.helpers import HOLDOUT, ROOT, live_gateway, poll


def snippet() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    [code] = [b for b in blocks if "tritonclient" in b]
    return code


def test_the_tritonclient_snippet_runs_as_written() -> None:
    data = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    data["model_repository"] = str(ROOT / "models")
    with live_gateway(data) as gw:
        code = (snippet().replace("localhost:8000", gw.http).replace("localhost:8001", gw.grpc)
                .replace('"models/samples/breast-cancer-holdout.jsonl"', repr(str(HOLDOUT))))
        namespace: dict[str, object] = {}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), namespace)
        namespace.clear()
        gc.collect()  # the clients' __del__ close them here, on this thread
        rows = [orjson.loads(line)["features"] for line in HOLDOUT.read_bytes().splitlines()]
        session = ort.InferenceSession(str(ROOT / "models" / "bc-logreg" / "1" / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        labels, _ = session.run(None, {"input": np.asarray(rows[:3], np.float32)})
        printed = out.getvalue()
        assert printed.startswith(f"{labels} [[")
        assert "[{'name': 'input', 'data_type': 'TYPE_FP32', 'dims': [30]}]\n" in printed
        assert printed.endswith(f"{labels} breast-cancer\n")
        poll(lambda: len(gw.sink.records) == 2, 10, "a record per request")
        assert {r["id"] for r in gw.sink.records} == {"order-17", None}
        assert all(len(r["predictions"]) == 3 for r in gw.sink.records)  # both shadows ran
