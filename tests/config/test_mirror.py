"""The mirror section: micro-batching, the shadows' CPU budget and where heavy shadows run."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config.load import validate
from gateway.errors import ConfigError

MODELS = [{"name": "bc-logreg", "version": "1"}]


def mirror(**fields: Any) -> dict[str, Any]:
    return {"models": MODELS, "mirror": fields}


def test_defaults() -> None:
    spec = validate({"models": MODELS}).config.mirror
    assert (spec.max_batch, spec.max_wait_ms, spec.cpu_budget, spec.isolation,
            spec.process_nice, spec.process_idle) == (64, 50.0, 0.5, "auto", 10, True)


def test_no_budget_and_each_isolation() -> None:
    assert validate(mirror(cpu_budget=None)).config.mirror.cpu_budget is None
    for isolation in ("auto", "inline", "thread", "process"):
        assert validate(mirror(isolation=isolation)).config.mirror.isolation == isolation


@pytest.mark.parametrize(("fields", "path"), [
    ({"cpu_budget": 0}, "mirror.cpu_budget"),
    ({"isolation": "fork"}, "mirror.isolation"),
    ({"process_nice": 20}, "mirror.process_nice"),
])
def test_errors_name_the_key_path(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(mirror(**fields))
    assert any(error.startswith(path) for error in info.value.errors), info.value.errors
