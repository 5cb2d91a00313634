"""The floor: the least a server must do to answer a V2 infer request with the champion model.

One starlette route, orjson, numpy and onnxruntime called inline on the event loop (the model
runs in tens of microseconds, so a thread hop would cost more than it saves). Every gateway
setup in bench.py is compared with this server at the same concurrency.

With ``--empty`` it serves the ``http-only`` setup instead: a raw ASGI app that reads the body
and answers a fixed V2 response, no JSON, no model. That is the cost of uvicorn and HTTP alone,
which every server in the table pays.

Run: ``python loadtests/floor.py --port 8000 [--model models/bc-logreg/1/model.onnx] [--empty]``
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Send

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


FIXED_ANSWER = orjson.dumps({"model_name": MODEL_NAME, "outputs": [
    {"name": "label", "shape": [1], "datatype": "INT64", "data": [1]},
    {"name": "probabilities", "shape": [1, 2], "datatype": "FP32", "data": [0.25, 0.75]}]})


async def empty_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """HTTP only: read the request, answer ``FIXED_ANSWER`` (``GET /health`` included)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", JSON.encode()),
                            (b"content-length", str(len(FIXED_ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": FIXED_ANSWER})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--empty", action="store_true",
                        help="serve a fixed answer without JSON or model (HTTP cost alone)")
    args = parser.parse_args(argv)
    app: Any = empty_app if args.empty else create_app(args.model)
    uvicorn.run(
        app, host=args.host, port=args.port, workers=1, lifespan="off" if args.empty else "auto",
        loop="uvloop", http="httptools", log_level="warning", access_log=False,
    )


if __name__ == "__main__":
    main()
