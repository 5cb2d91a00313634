"""Start-up failures of the model repository: every problem named with its file, all at once."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.backends.registry import ModelSet, load_models
from gateway.errors import ConfigError, NotFound
from tests.helpers import MODEL_NAMES, MODELS, config, loaded


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A private copy of the bundled models (model.onnx and card.json per version)."""
    for name in MODEL_NAMES:
        shutil.copytree(MODELS / name, tmp_path / "models" / name)
    return tmp_path / "models"


def repo_config(repo: Path, models: list[dict[str, Any]] | None = None) -> Any:
    return loaded(config(models=models, model_repository=str(repo)))


async def errors_of(repo: Path, models: list[dict[str, Any]] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        await load_models(repo_config(repo, models))
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def edit_card(repo: Path, name: str, **changes: Any) -> Path:
    path = repo / name / "1" / "card.json"
    card = orjson.loads(path.read_bytes())
    card.update(changes)
    path.write_bytes(orjson.dumps(card))
    return path


async def test_the_bundled_repository_loads(repo: Path) -> None:
    models = await load_models(repo_config(repo))
    try:
        assert sorted(models.by_ref) == ["bc-gbt:1", "bc-logreg:1", "bc-rf:1"]
        assert models.versions == {"bc-gbt": ("1",), "bc-logreg": ("1",), "bc-rf": ("1",)}
        for backend in models:
            assert backend.warmup_s is not None
    finally:
        for backend in models:
            await backend.close()


async def test_missing_model_file(repo: Path) -> None:
    (repo / "bc-rf" / "1" / "model.onnx").unlink()
    [error] = await errors_of(repo)
    assert error.startswith("models[2] (bc-rf:1): ")
    assert str(repo / "bc-rf" / "1" / "model.onnx") in error
    assert "model file not found" in error


async def test_missing_model_directory(repo: Path) -> None:
    shutil.rmtree(repo / "bc-gbt")
    [error] = await errors_of(repo)
    assert "models[1] (bc-gbt:1)" in error and "not found" in error
    assert str(repo / "bc-gbt" / "1") in error


async def test_corrupt_onnx_file(repo: Path) -> None:
    path = repo / "bc-gbt" / "1" / "model.onnx"
    path.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    [error] = await errors_of(repo)
    assert "models[1] (bc-gbt:1)" in error
    assert str(path) in error and "cannot load ONNX model" in error


async def test_truncated_onnx_file(repo: Path) -> None:
    path = repo / "bc-logreg" / "1" / "model.onnx"
    path.write_bytes(path.read_bytes()[:200])
    [error] = await errors_of(repo)
    assert str(path) in error and "cannot load ONNX model" in error


async def test_one_changed_byte_breaks_the_hash(repo: Path) -> None:
    path = repo / "bc-logreg" / "1" / "model.onnx"
    data = bytearray(path.read_bytes())
    # Flip a byte inside the producer name string: the file still parses, only the hash moves.
    at = bytes(data).index(b"skl2onnx")
    data[at] = ord("S")
    path.write_bytes(bytes(data))
    [error] = await errors_of(repo)
    card = repo / "bc-logreg" / "1" / "card.json"
    assert str(path) in error and str(card) in error
    assert "sha256" in error and "does not match" in error
    assert orjson.loads(card.read_bytes())["sha256"] in error


async def test_card_with_another_hash(repo: Path) -> None:
    card = edit_card(repo, "bc-rf", sha256="0" * 64)
    [error] = await errors_of(repo)
    assert "models[2] (bc-rf:1)" in error and str(card) in error
    assert "0" * 64 in error and "stale" in error


async def test_card_without_a_hash_is_accepted(repo: Path) -> None:
    edit_card(repo, "bc-rf", sha256=None)
    models = await load_models(repo_config(repo))
    assert "bc-rf:1" in models.by_ref


@pytest.mark.parametrize(("kind", "change", "words"), [
    ("inputs", {"inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 30]}]},
     ("inputs", "FP64", "do not match the ONNX file", "FP32")),
    ("inputs", {"inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}]},
     ("inputs", "features", "do not match")),
    ("outputs", {"outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}]},
     ("outputs", "do not match", "probabilities")),
    ("outputs", {"outputs": [{"name": "label", "datatype": "INT64", "shape": [-1, 1]},
                             {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]},
     ("outputs", "do not match")),
])
async def test_card_signature_mismatch(repo: Path, kind: str, change: dict[str, Any],
                                       words: tuple[str, ...]) -> None:
    card = edit_card(repo, "bc-gbt", **change)
    [error] = await errors_of(repo)
    assert "models[1] (bc-gbt:1)" in error and str(card) in error
    for word in words:
        assert word in error, (word, error)


async def test_card_dimension_mismatch(repo: Path) -> None:
    card = edit_card(repo, "bc-gbt",
                     inputs=[{"name": "input", "datatype": "FP32", "shape": [-1, 31]}])
    [error] = await errors_of(repo)
    assert str(card) in error and "31" in error


async def test_card_naming_outputs_the_model_lacks(repo: Path) -> None:
    card = edit_card(repo, "bc-logreg", scores_output="scores")
    [error] = await errors_of(repo)
    assert str(card) in error and "label/scores outputs" in error


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]"])
async def test_unreadable_card(repo: Path, content: bytes) -> None:
    card = repo / "bc-logreg" / "1" / "card.json"
    card.write_bytes(content)
    [error] = await errors_of(repo)
    assert str(card) in error and "card" in error


async def test_malformed_tensor_list_in_card(repo: Path) -> None:
    card = edit_card(repo, "bc-logreg", inputs=[{"name": "input"}])
    [error] = await errors_of(repo)
    assert str(card) in error and "malformed tensor list" in error


async def test_every_problem_is_reported_at_once(repo: Path) -> None:
    (repo / "bc-logreg" / "1" / "model.onnx").write_bytes(b"garbage")
    edit_card(repo, "bc-gbt", sha256="f" * 64)
    (repo / "bc-rf" / "1" / "model.onnx").unlink()
    errors = await errors_of(repo)
    assert len(errors) == 3
    assert [e.split(":", 1)[0] for e in errors] == ["models[0] (bc-logreg", "models[1] (bc-gbt",
                                                    "models[2] (bc-rf"]


async def test_a_model_without_a_card_loads_without_classifier(repo: Path) -> None:
    (repo / "bc-gbt" / "1" / "card.json").unlink()
    models = await load_models(repo_config(repo))
    backend = models.get("bc-gbt")
    assert backend.classifier is None
    assert [s.name for s in backend.signature.inputs] == ["input"]


async def test_explicit_model_path(repo: Path, tmp_path: Path) -> None:
    shutil.copytree(repo / "bc-rf" / "1", tmp_path / "elsewhere")
    models = [{"name": "forest", "version": "3", "path": str(tmp_path / "elsewhere")}]
    data = config([{"name": "dep", "champion": "forest"}], models=models,
                  model_repository=str(repo))
    loaded_models = await load_models(loaded(data))
    assert list(loaded_models.by_ref) == ["forest:3"]


async def test_versions_sort_numerically_and_newest_is_default(repo: Path) -> None:
    for version in ("2", "10"):
        shutil.copytree(repo / "bc-logreg" / "1", repo / "bc-logreg" / version)
    specs = [{"name": "bc-logreg", "version": v} for v in ("10", "1", "2")]
    data = config([{"name": "dep", "champion": "bc-logreg:1"}], models=specs,
                  model_repository=str(repo))
    models = await load_models(loaded(data))
    assert models.versions["bc-logreg"] == ("1", "2", "10")
    assert models.get("bc-logreg").version == "10"
    assert models.get("bc-logreg", "2").version == "2"
    with pytest.raises(NotFound, match=r"no version '3'.*\['1', '2', '10'\]"):
        models.get("bc-logreg", "3")
    with pytest.raises(NotFound, match="'nope' not found"):
        models.get("nope")


def test_modelset_iterates_backends() -> None:
    backend: Any = object()
    models = ModelSet({"m:1": backend}, {"m": ("1",)})
    assert list(models) == [backend]


def raising(name: str, version: str, options: dict[str, Any]) -> Any:
    raise RuntimeError("no GPU here")


def incomplete(name: str, version: str, options: dict[str, Any]) -> Any:
    return object()


@pytest.mark.parametrize(("target", "words"), [
    ("tests.no_such_module:factory", ("cannot import", "tests.no_such_module:factory")),
    ("tests.backends:no_such_factory", ("cannot import", "no_such_factory")),
    (f"{__name__}:raising", ("raising failed", "no GPU here")),
    (f"{__name__}:incomplete", ("without 'signature'",)),
])
async def test_custom_backend_failures(target: str, words: tuple[str, ...]) -> None:
    models = [{"name": "custom", "python": target}]
    with pytest.raises(ConfigError) as info:
        await load_models(loaded(config([], models=models)))
    [error] = info.value.errors
    assert error.startswith("models[0] (custom:1): ")
    for word in words:
        assert word in error, (word, error)


async def test_custom_backend_loads() -> None:
    models = [{"name": "custom", "python": "tests.backends:fake", "options": {"delay": 0}}]
    loaded_models = await load_models(loaded(config([], models=models)))
    assert loaded_models.get("custom").platform == "python"


class Older:
    """A custom backend written before calls took a ``context``."""

    platform = "python"
    classifier = None

    def __init__(self, name: str, version: str, options: dict[str, Any]) -> None:
        from tests.backends import SIGNATURE

        self.name, self.version, self.signature = name, version, SIGNATURE
        self.seen: list[Any] = []

    async def infer(self, inputs: Any) -> dict[str, Any]:
        self.seen.append(inputs)
        return {}

    async def infer_batch(self, inputs: Any) -> dict[str, Any]:
        return await self.infer(inputs)

    async def close(self) -> None:
        return None


async def test_a_custom_backend_without_context_is_adapted() -> None:
    from gateway.backends.base import CallContext
    from gateway.backends.custom import ContextFree

    models = [{"name": "old", "python": f"{__name__}:Older"},
              {"name": "new", "python": "tests.backends:fake"}]
    loaded_models = await load_models(loaded(config([], models=models)))
    old = loaded_models.get("old")
    assert isinstance(old, ContextFree) and old.name == "old" and old.platform == "python"
    await old.infer({"x": 1}, CallContext("r1"))
    await old.infer_batch({"x": 2}, context=CallContext("r2"))
    assert old.seen == [{"x": 1}, {"x": 2}]
    assert not isinstance(loaded_models.get("new"), ContextFree)  # takes context itself
