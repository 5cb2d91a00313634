"""The floor: the least a server must do to answer a V2 infer request with the champion model.

One starlette route, orjson, numpy and onnxruntime called inline on the event loop (the model
runs in tens of microseconds, so a thread hop would cost more than it saves). Every gateway
setup in bench.py is compared with this server at the same concurrency.

Run: ``python loadtests/floor.py --port 8000 [--model models/bc-logreg/1/model.onnx]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "models" / "bc-logreg" / "1" / "model.onnx"
MODEL_NAME = "bc-logreg"
INPUT_NAME = "input"
JSON = "application/json"


def open_session(model: Path) -> ort.InferenceSession:
    """One single-threaded CPU session, as the gateway configures its models."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def create_app(model: Path = DEFAULT_MODEL) -> Starlette:
    """The floor app: ``POST /infer`` (V2 body in, V2 outputs out) and ``GET /health``."""
    session = open_session(model)
    outputs = [(o.name, o.type) for o in session.get_outputs()]
    output_names = [name for name, _ in outputs]
    datatypes = ["INT64" if "int64" in kind else "FP32" for _, kind in outputs]

    async def infer(request: Request) -> Response:
        try:
            tensor = orjson.loads(await request.body())["inputs"][0]
            batch = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            return Response(orjson.dumps({"error": str(exc)}), 400, media_type=JSON)
        results = session.run(output_names, {INPUT_NAME: batch})
        body = {
            "model_name": MODEL_NAME,
            "outputs": [
                {"name": name, "shape": list(value.shape), "datatype": datatype,
                 "data": value.ravel()}
                for name, datatype, value in zip(output_names, datatypes, results, strict=True)
            ],
        }
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON)

    async def health(request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    routes = [
        Route("/infer", infer, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.model), host=args.host, port=args.port, workers=1,
        loop="uvloop", http="httptools", log_level="warning", access_log=False,
    )


if __name__ == "__main__":
    main()
