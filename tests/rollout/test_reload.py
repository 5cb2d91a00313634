"""Hot reload under continuous load: 100 reloads, valid and invalid alternating, fail no request;
the invalid ones never take effect. Plus the file watcher and SIGHUP-free paths."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from gateway.app import create_app
from gateway.settings import Settings
from tests.helpers import LiveServer, apoll, config, poll

ADMIN = "admin-token-0123456789"
AUTH = {"authorization": f"Bearer {ADMIN}"}


def valid(shadow: str) -> str:
    return yaml.safe_dump(config([{"name": "breast-cancer", "champion": "bc-logreg",
                                   "shadows": [{"model": shadow}]}]))


INVALID = [
    "models: [\n  - {name: bc-logreg\n",  # broken YAML
    yaml.safe_dump(config([{"name": "breast-cancer", "champion": "ghost"}])),  # unknown model
    yaml.safe_dump(config([{"name": "breast-cancer", "champion": "bc-logreg",
                            "canaries": [{"model": "bc-gbt", "weight": 130}]}])),  # > 100%
]


async def load(port: int, body: bytes, stop: asyncio.Event, statuses: list[int]) -> None:
    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not stop.is_set():
                writer.write(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: "
                             b"application/json\r\ncontent-length: " + str(len(body)).encode()
                             + b"\r\n\r\n" + body)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                statuses.append(int(head.split(b" ", 2)[1]))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(4)))


@pytest.mark.slow
def test_a_hundred_reloads_under_load_fail_no_request(tmp_path: Path,
                                                      holdout: list[dict[str, Any]]) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(valid("bc-gbt"))
    settings = Settings(config=path, log="memory", admin_token=ADMIN, watch_config=False)
    body = orjson.dumps({"instances": [holdout[0]["features"]]})
    statuses: list[int] = []
    with LiveServer(create_app(settings)) as server:
        async def scenario() -> None:
            stop = asyncio.Event()
            traffic = asyncio.create_task(load(server.port, body, stop, statuses))
            async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as admin:
                revision = (await admin.get("/admin/status")).json()["revision"]
                for n in range(100):
                    before = len(statuses)
                    if n % 2 == 0:
                        shadow = "bc-rf" if n % 4 == 0 else "bc-gbt"
                        path.write_text(valid(shadow))
                        r = await admin.post("/admin/reload")
                        assert r.status_code == 200 and r.json()["result"] == "applied", r.text
                        revision = r.json()["revision"]
                        meta = (await admin.get("/v2/models/breast-cancer")).json()
                        assert meta["parameters"]["shadows"] == [f"{shadow}:1"]
                    else:
                        path.write_text(INVALID[n // 2 % len(INVALID)])
                        r = await admin.post("/admin/reload")
                        assert r.status_code == 422 and r.json()["errors"], r.text
                    status = (await admin.get("/admin/status")).json()
                    assert status["revision"] == revision  # an invalid file changed nothing
                    await apoll(lambda b=before: len(statuses) >= b + 5, 30,  # type: ignore[misc]
                                "requests across this reload", every=0.001)
            stop.set()
            await traffic

        asyncio.run(scenario())
    assert len(statuses) > 500 and set(statuses) == {200}


def test_the_file_watcher_reloads_within_about_a_second(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(valid("bc-gbt"))
    settings = Settings(config=path, log="memory", admin_token=ADMIN)
    with LiveServer(create_app(settings)) as server:
        def shadows() -> list[str]:
            meta = httpx.get(f"{server.url}/v2/models/breast-cancer", timeout=5).json()
            return list(meta["parameters"]["shadows"])

        assert shadows() == ["bc-gbt:1"]
        temporary = tmp_path / "gw.yaml.tmp"  # as editors save: write aside, rename over
        temporary.write_text(valid("bc-rf"))
        temporary.replace(path)
        poll(lambda: shadows() == ["bc-rf:1"], 10, "the watcher to apply the new file")
        path.write_text("not: [valid")
        status = {}

        def counted() -> bool:
            nonlocal status
            status = httpx.get(f"{server.url}/admin/status", headers=AUTH, timeout=5).json()
            return bool(status["last_reload"]) and status["last_reload"]["result"] == "invalid"

        poll(counted, 10, "the invalid file to be seen and refused")
        assert shadows() == ["bc-rf:1"]
        metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
        assert 'shadowgate_config_reloads_total{result="invalid"} 1.0' in metrics
