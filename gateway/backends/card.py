"""Model cards: the JSON file beside each model.onnx (see models/README.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import ConfigError
from gateway.protocol.signature import ClassifierInfo, TensorSpec

CARD_FILE = "card.json"


@dataclass(frozen=True)
class ModelCard:
    """The parts of a card the gateway uses; ``raw`` keeps the whole document."""

    path: Path
    sha256: str | None
    inputs: tuple[TensorSpec, ...] | None
    outputs: tuple[TensorSpec, ...] | None
    classifier: ClassifierInfo | None
    raw: dict[str, Any]


def _specs(raw: Any, where: str) -> tuple[TensorSpec, ...] | None:
    if raw is None:
        return None
    try:
        return tuple(TensorSpec(t["name"], t["datatype"], tuple(int(d) for d in t["shape"]))
                     for t in raw)
    except (TypeError, KeyError, ValueError) as exc:
        raise ConfigError([f"{where}: malformed tensor list ({exc!r})"]) from None


def load_card(path: Path) -> ModelCard:
    """Parse a card; a malformed one stops start-up with the file named."""
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read model card: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: model card must be a JSON object"])
    classifier = None
    if raw.get("class_labels"):
        try:
            classifier = ClassifierInfo(
                class_labels=tuple(str(c) for c in raw["class_labels"]),
                label_output=str(raw.get("label_output", "label")),
                scores_output=str(raw.get("scores_output", "probabilities")),
                features=tuple(str(f) for f in raw.get("features") or ()),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError([f"{path}: malformed classifier fields ({exc!r})"]) from None
    return ModelCard(
        path=path,
        sha256=raw.get("sha256"),
        inputs=_specs(raw.get("inputs"), f"{path}: inputs"),
        outputs=_specs(raw.get("outputs"), f"{path}: outputs"),
        classifier=classifier,
        raw=raw,
    )


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
