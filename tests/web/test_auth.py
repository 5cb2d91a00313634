"""Tokens and scopes: the guard alone, the tokens file, and inference behind a token."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.errors import ConfigError, Forbidden, GatewayError, Unauthorized
from gateway.settings import Settings
from gateway.web.auth import (
    Guard,
    Token,
    authorize,
    digest,
    is_loopback,
    load_tokens_file,
    tokens_from_settings,
)
from gateway.web.errors import HANDLERS
from tests.helpers import Harness, config, harness, v2_body

LABELER = "labeler-secret-0123456789"
PM = "pm-dashboard-secret-012345"
INFER = "inference-secret-0123456789"


def tokens(**named: tuple[str, set[str]]) -> list[Token]:
    return [Token(name, digest(secret), frozenset(scopes))
            for name, (secret, scopes) in named.items()]


def guard(loopback: bool = True, **named: tuple[str, set[str]]) -> Guard:
    return Guard(tokens(**named), loopback=loopback)


def refusal(g: Guard, scope: Any, header: str | None) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        g.check(scope, header)
    return info.value


def test_the_right_token_names_its_caller() -> None:
    g = guard(labeler=(LABELER, {"feedback"}), pm=(PM, {"reports", "feedback"}))
    assert g.check("feedback", f"Bearer {LABELER}").name == "labeler"
    assert g.check("feedback", f"bearer   {PM} ").name == "pm"
    assert g.check("reports", f"Bearer {PM}".encode()).name == "pm"


@pytest.mark.parametrize(("header", "error", "words"), [
    (None, Unauthorized, "needs a bearer token with the 'feedback' scope"),
    ("", Unauthorized, "expected 'Bearer <token>'"),
    (LABELER, Unauthorized, "expected 'Bearer <token>'"),
    (f"Basic {LABELER}", Unauthorized, "expected 'Bearer <token>'"),
    ("Bearer", Unauthorized, "expected 'Bearer <token>'"),
    (f"Bearer {LABELER}x", Forbidden, "not valid"),
    (f"Bearer {LABELER[:-1]}", Forbidden, "not valid"),
    (f"Bearer {PM}", Forbidden, "token 'pm' does not grant the 'feedback' scope"),
])
def test_wrong_or_missing_tokens_are_refused_without_echoing_them(
        header: str | None, error: type[GatewayError], words: str) -> None:
    g = guard(labeler=(LABELER, {"feedback"}), pm=(PM, {"reports"}))
    exc = refusal(g, "feedback", header)
    assert type(exc) is error and words in exc.message
    assert LABELER[:8] not in exc.message and PM[:8] not in exc.message
    if error is Unauthorized:
        assert exc.headers == {"www-authenticate": 'Bearer realm="shadowgate"'}


def test_every_configured_hash_is_compared_whichever_matches() -> None:
    """Timing says nothing: the presented token is hashed, and compared in constant time
    with every configured hash (no early exit on a match, equal lengths every time)."""
    calls: list[tuple[bytes, bytes]] = []

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    named = tokens(**{f"t{i}": (f"secret-number-{i:04d}", {"feedback"}) for i in range(5)})
    g = Guard(named, loopback=True, compare=compare)
    for presented in ("secret-number-0000", "secret-number-0004", "nope", "x" * 5000):
        calls.clear()
        with contextlib.suppress(Forbidden):
            g.check("feedback", f"Bearer {presented}")
        assert len(calls) == 5
        assert {b for _, b in calls} == {t.digest for t in named}
        assert all(a == hashlib.sha256(presented.encode()).digest() for a, _ in calls)
        assert all(len(a) == len(b) == 32 for a, b in calls)


def test_defaults_without_tokens() -> None:
    local, public = guard(loopback=True), guard(loopback=False)
    assert local.check("inference", None).name == public.check("inference", None).name
    assert local.check("feedback", None).name == "anonymous"
    assert local.check("reports", "Bearer whatever").name == "anonymous"
    for g in (local, public):
        exc = refusal(g, "admin", f"Bearer {LABELER}")
        assert isinstance(exc, Forbidden) and "no admin token configured" in exc.message
    for scope in ("feedback", "reports"):
        exc = refusal(public, scope, None)
        assert isinstance(exc, Forbidden)
        assert "non-loopback" in exc.message and f"SHADOWGATE_{scope.upper()}_TOKEN" in exc.message
    warnings = [text for warn, text in public.describe() if warn]
    assert len(warnings) == 2 and all("disabled until a token is configured" in w
                                      for w in warnings)
    assert not [text for warn, text in local.describe() if warn]
    assert not guard(True).inference_needs_token
    assert guard(True, app=(INFER, {"inference"})).inference_needs_token


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
    ("gateway.example", False), ("", False)])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_tokens_file_names_each_caller(tmp_path: Path) -> None:
    path = write(tmp_path, {"tokens": [
        {"name": "labeler", "sha256": hashlib.sha256(LABELER.encode()).hexdigest(),
         "scopes": ["feedback"]},
        {"name": "pm-dashboard", "token": PM, "scopes": ["reports", "feedback"]}]})
    settings = Settings(tokens_file=path, admin_token="admin-secret-0123456789")  # type: ignore[arg-type]
    g = Guard(tokens_from_settings(settings), loopback=False)
    assert g.check("feedback", f"Bearer {LABELER}").name == "labeler"
    assert g.check("reports", f"Bearer {PM}").name == "pm-dashboard"
    assert g.check("admin", "Bearer admin-secret-0123456789").name == "SHADOWGATE_ADMIN_TOKEN"
    # Revoked: the entry is gone from the file.
    write(tmp_path, {"tokens": [{"name": "pm-dashboard", "token": PM, "scopes": ["reports"]}]})
    g = Guard(tokens_from_settings(settings), loopback=False)
    assert isinstance(refusal(g, "feedback", f"Bearer {LABELER}"), Forbidden)


@pytest.mark.parametrize(("entries", "words"), [
    ([{"name": "a", "token": "short", "scopes": ["feedback"]}], "at least 16 characters"),
    ([{"name": "a", "token": LABELER, "sha256": "0" * 64, "scopes": ["feedback"]}],
     "exactly one of sha256 or token"),
    ([{"name": "a", "scopes": ["feedback"]}], "exactly one of sha256 or token"),
    ([{"name": "a", "sha256": "abc", "scopes": ["feedback"]}], "tokens.0.sha256"),
    ([{"name": "a", "token": LABELER, "scopes": ["everything"]}], "tokens.0.scopes.0"),
    ([{"name": "a", "token": LABELER, "scopes": []}], "tokens.0.scopes"),
    ([{"name": "has space", "token": LABELER, "scopes": ["feedback"]}], "tokens.0.name"),
    ([{"name": "a", "token": LABELER, "scopes": ["feedback"], "expires": 1}],
     "tokens.0.expires"),
])
def test_a_bad_tokens_file_is_explained_without_the_token(
        tmp_path: Path, entries: list[dict[str, Any]], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_tokens_file(write(tmp_path, {"tokens": entries}))
    text = str(info.value)
    assert words in text and str(tmp_path) in text
    assert LABELER not in text


def test_names_and_tokens_are_unique_and_env_tokens_long_enough(tmp_path: Path) -> None:
    path = write(tmp_path, {"tokens": [
        {"name": "a", "token": LABELER, "scopes": ["feedback"]},
        {"name": "a", "token": PM, "scopes": ["feedback"]},
        {"name": "b", "token": LABELER, "scopes": ["reports"]}]})
    settings = Settings(tokens_file=path, feedback_token="tooshort")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        tokens_from_settings(settings)
    text = str(info.value)
    assert "SHADOWGATE_FEEDBACK_TOKEN: expected at least 16 characters, got 8" in text
    assert "token name 'a' is used twice" in text
    assert "token 'b': the same token is configured under another name" in text
    assert "tooshort" not in text and LABELER not in text
    with pytest.raises(ConfigError, match="cannot read the tokens file"):
        load_tokens_file(tmp_path / "missing.yaml")


def test_authorize_guards_any_route() -> None:
    """What GET /reports/{deployment} and the admin routes call."""
    async def report(request: Request) -> Response:
        return JSONResponse({"for": authorize("reports", request).name})

    async def admin(request: Request) -> Response:
        return JSONResponse({"for": authorize("admin", request).name})

    app = Starlette(routes=[Route("/reports/x", report), Route("/admin/x", admin)],
                    exception_handlers=HANDLERS)  # type: ignore[arg-type]
    app.state.guard = guard(False, pm=(PM, {"reports"}))
    with TestClient(app) as client:
        assert client.get("/reports/x", headers={"authorization": f"Bearer {PM}"}).json() == {
            "for": "pm"}
        r = client.get("/reports/x")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = client.get("/admin/x", headers={"authorization": f"Bearer {PM}"})
        assert r.status_code == 403 and "no admin token configured" in r.json()["error"]


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with harness(config(), inference_token=INFER) as running:
        yield running


@pytest.fixture(scope="module")
def row(holdout: list[dict[str, Any]]) -> list[float]:
    return holdout[0]["features"]


@pytest.mark.parametrize("path", ["/v2/models/breast-cancer/infer", "/v2/models/bc-gbt/infer",
                                  "/v2/models/bc-gbt/versions/1/infer", "/predict",
                                  "/predict/breast-cancer"])
def test_inference_behind_a_token(h: Harness, row: list[float], path: str) -> None:
    body = {"instances": [row]} if path.startswith("/predict") else v2_body([row])
    before = len(h.sink.records)
    r = h.client.post(path, json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "x-request-id" in r.headers and list(r.json()) == ["error"]
    r = h.client.post(path, json=body, headers={"authorization": "Bearer wrong-but-long-enough"})
    assert r.status_code == 403
    assert len(h.sink.records) == before  # a refused request leaves no record
    r = h.client.post(path, json=body, headers={"authorization": f"Bearer {INFER}"})
    assert r.status_code == 200, r.text


def test_the_token_is_checked_before_anything_is_revealed(h: Harness) -> None:
    r = h.client.post("/v2/models/no-such-model/infer", content=b"not json")
    assert r.status_code == 401
    for path in ("/v2/models/bc-gbt", "/v2/models/bc-gbt/ready", "/v2/models/nope"):
        assert h.client.get(path).status_code == 401, path
        assert h.client.get(path, headers={"authorization": f"Bearer {INFER}"}
                            ).status_code in (200, 404)
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json"):
        assert h.client.get(path).status_code == 200, path
