"""A minimal Open Inference Protocol V2 server for tests, written the way MLServer behaves
when its model settings declare nothing: the metadata lists ``"inputs": []`` and
``"outputs": []``, ``label`` comes back shaped ``[n, 1]``, and a request that does not fit
is refused with a 400 and ``{"error": ...}``.

It serves the bundled ``bc-logreg`` ONNX file through onnxruntime and remembers every
inference call (headers and body ``id``) for the test to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.helpers import MODELS


@dataclass
class Seen:
    """One inference call as the server received it."""

    headers: dict[str, str]
    id: str | None
    rows: int


@dataclass
class MiniV2:
    """The app and what it saw."""

    model: str = "bc-logreg"
    path: Path = MODELS / "bc-logreg" / "1" / "model.onnx"
    calls: list[Seen] = field(default_factory=list)
    fail: int | None = None  # answer every inference call with this status

    def __post_init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options,
                                            providers=["CPUExecutionProvider"])

    def app(self) -> Starlette:
        base = f"/v2/models/{self.model}"
        return Starlette(routes=[Route(base, self.metadata, methods=["GET"]),
                                 Route(base + "/infer", self.infer, methods=["POST"])])

    async def metadata(self, request: Request) -> Response:
        return _json({"name": self.model, "versions": [], "platform": "",
                      "inputs": [], "outputs": []})

    async def infer(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        if self.fail is not None:
            return _json({"error": "this server is told to fail"}, self.fail)
        inputs = {t["name"]: t for t in body.get("inputs", [])}
        if set(inputs) != {"input"}:
            return _json({"error": f"expected one input named 'input', got {sorted(inputs)}"},
                         400)
        tensor = inputs["input"]
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        if x.ndim != 2 or x.shape[1] != 30:
            return _json({"error": f"input: expected [n, 30], got {list(x.shape)}"}, 400)
        self.calls.append(Seen(dict(request.headers), body.get("id"), int(x.shape[0])))
        label, scores = self.session.run(["label", "probabilities"], {"input": x})
        return _json({"model_name": self.model, "id": body.get("id"), "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [len(label), 1],
             "data": label.tolist()},
            {"name": "probabilities", "datatype": "FP32", "shape": list(scores.shape),
             "data": scores.ravel().tolist()}]})


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")
