"""A remote model's metadata merged with the config, read through httpx's MockTransport."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from gateway.backends.card import ModelCard, load_card
from gateway.backends.registry import load_models
from gateway.backends.remote import RemoteBackend
from gateway.backends.remote_meta import Declared, parse_metadata, resolve
from gateway.config.load import load
from gateway.config.schema import RemoteSpec
from gateway.errors import ConfigError
from tests.helpers import MODELS

CARD = MODELS / "bc-logreg" / "1" / "card.json"
INPUTS = [{"name": "input", "datatype": "FP32", "shape": [-1, 30]}]
OUTPUTS = [{"name": "label", "datatype": "INT64", "shape": [-1, 1]},
           {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
CLASSES = {"class_labels": ["malignant", "benign"]}


def metadata(**fields: Any) -> dict[str, Any]:
    return {"name": "m", "versions": [], "platform": "onnx", "inputs": [], "outputs": [],
            **fields}


def transport(body: Any, status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.Response(status, content=content)
    return httpx.MockTransport(handler)


async def started(meta: Any, status: int = 200, card: ModelCard | None = None,
                  **remote: Any) -> RemoteBackend:
    spec = RemoteSpec.model_validate({"url": "http://remote", **remote})
    backend = RemoteBackend("far", "1", spec, transport=transport(meta, status), card=card)
    await backend.start()
    await backend.close()
    return backend


def test_missing_and_empty_tensor_lists_read_as_unknown() -> None:
    for raw in (metadata(), {"name": "m"}, metadata(inputs=None, outputs=None)):
        meta = parse_metadata(raw)
        assert meta.inputs is None and meta.outputs is None and meta.classifier is None
        resolved = resolve(Declared(), meta)
        assert resolved.signature.unknown_parts == ("inputs", "outputs")
        assert [n.split(":")[0] for n in resolved.notes] == [
            "inputs unknown", "outputs unknown", "class labels unknown"]
        assert resolved.mismatches == []
    with pytest.raises(TypeError):
        parse_metadata([])


async def test_the_remote_metadata_is_used_when_the_config_declares_nothing() -> None:
    far = await started(metadata(inputs=INPUTS, outputs=OUTPUTS, parameters=CLASSES))
    assert far.signature.unknown_parts == () and far.signature.batchable
    assert far.classifier is not None and far.classifier.class_labels == ("malignant", "benign")
    assert far.notes == [] and far.mismatches == []
    assert far.metadata is not None and "platform onnx" in far.metadata.summary()


async def test_a_declared_signature_wins_and_mismatches_are_named(
        caplog: pytest.LogCaptureFixture) -> None:
    declared_in = [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    with caplog.at_level(logging.WARNING, "gateway.backends.remote"):
        far = await started(metadata(inputs=INPUTS, outputs=OUTPUTS,
                                     parameters={"class_labels": ["no", "yes"]}),
                            inputs=declared_in,
                            classifier={"class_labels": ["malignant", "benign"]})
    assert far.signature.inputs[0].shape == (-1, 4)
    assert far.classifier is not None and far.classifier.class_labels == ("malignant", "benign")
    assert len(far.mismatches) == 2
    assert far.mismatches[0].startswith("inputs: the config declares [input FP32 [-1, 4]], "
                                        "the remote reports [input FP32 [-1, 30]]")
    assert "class labels" in far.mismatches[1] and "['no', 'yes']" in far.mismatches[1]
    assert sum("does not match the config" in r.getMessage() for r in caplog.records) == 2


async def test_a_card_declares_signature_and_classifier() -> None:
    # The remote says [n, 1] where the card says [n]: compatible (answers are reshaped).
    far = await started(metadata(outputs=OUTPUTS), card=load_card(CARD))
    assert far.mismatches == [] and far.notes == []
    assert far.signature.outputs[0].shape == (-1,)
    assert far.classifier is not None and far.classifier.features[0] == "mean radius"


async def test_classifier_outputs_missing_from_the_remote_outputs_is_a_mismatch() -> None:
    far = await started(metadata(outputs=OUTPUTS[:1]), classifier=CLASSES)
    assert far.mismatches == ["classifier: scores_output 'probabilities' is not among the "
                              "outputs ['label']"]


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"not json", 200, "unreadable metadata"),
    ({"inputs": [{"name": "x"}]}, 200, "unreadable metadata"),
    ({"error": "no such model"}, 404, "metadata answered 404"),
])
async def test_metadata_errors_stop_start_up(body: Any, status: int, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        await started(body, status)
    assert words in info.value.errors[0] and "http://remote/v2/models/far" in info.value.errors[0]


async def test_a_card_path_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "far.json").write_bytes(CARD.read_bytes())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"models": [{"name": "far", "remote": {
        "url": "http://remote", "card": "cards/far.json"}}]}))
    models = await load_models(load(path), transport(metadata()))
    far = models.get("far")
    assert far.classifier is not None and far.signature.unknown_parts == ()
    await far.close()
    path.write_text(path.read_text().replace("cards/far.json", "cards/nope.json"))
    with pytest.raises(ConfigError) as info:
        await load_models(load(path), transport(metadata()))
    assert str(tmp_path / "cards" / "nope.json") in info.value.errors[0]


def test_a_changed_card_reloads_the_remote_model(tmp_path: Path) -> None:
    # A config reload reuses a model whose fingerprint is unchanged: a remote model's card
    # file is part of it, as a local model's ONNX file is.
    import os

    from gateway.serving import fingerprint

    card = tmp_path / "far.json"
    card.write_bytes(CARD.read_bytes())
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"models": [{"name": "far", "remote": {
        "url": "http://remote", "card": "far.json"}}]}))
    cfg = load(path)
    before = fingerprint(cfg, cfg.config.models[0])
    assert fingerprint(cfg, cfg.config.models[0]) == before
    os.utime(card, ns=(1, 1))
    assert fingerprint(cfg, cfg.config.models[0]) != before
