"""What a remote model is: its V2 metadata merged with what the config declares about it.

A declaration in the config (``inputs``, ``outputs``, ``classifier``, or a model ``card``)
wins over the remote's metadata; a part that neither states is unknown (see
``Signature``). Disagreements between the two are ``mismatches``: logged at start-up, and
an error for ``shadowgate validate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.backends.card import ModelCard
from gateway.config.schema import RemoteSpec, TensorDecl
from gateway.protocol.signature import ClassifierInfo, Signature, TensorSpec, same_specs

Specs = tuple[TensorSpec, ...]


@dataclass(frozen=True)
class RemoteMetadata:
    """What the remote server said about its model; None where it said nothing."""

    name: str | None
    platform: str | None
    inputs: Specs | None
    outputs: Specs | None
    classifier: ClassifierInfo | None

    def summary(self) -> str:
        classes = list(self.classifier.class_labels) if self.classifier else "(none listed)"
        return (f"platform {self.platform or '(not given)'}; inputs {describe(self.inputs)}; "
                f"outputs {describe(self.outputs)}; class labels {classes}")


def parse_metadata(raw: Any) -> RemoteMetadata:
    """Read a V2 model metadata document; missing or empty tensor lists read as None.

    Raises ValueError, KeyError or TypeError when the document is malformed."""
    if not isinstance(raw, dict):
        raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
    params = raw.get("parameters") or {}
    classifier = None
    if isinstance(params, dict) and params.get("class_labels"):
        classifier = ClassifierInfo(
            tuple(str(c) for c in params["class_labels"]),
            str(params.get("label_output", "label")),
            str(params.get("scores_output", "probabilities")),
            tuple(str(f) for f in params.get("features") or ()))
    return RemoteMetadata(raw.get("name"), raw.get("platform"), _specs(raw.get("inputs")),
                          _specs(raw.get("outputs")), classifier)


def _specs(raw: Any) -> Specs | None:
    if not raw:
        return None
    return tuple(TensorSpec(str(t["name"]), str(t["datatype"]),
                            tuple(int(d) for d in t["shape"])) for t in raw)


def _decl(tensors: Sequence[TensorDecl] | None) -> Specs | None:
    return None if tensors is None else tuple(
        TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in tensors)


@dataclass(frozen=True)
class Declared:
    """What the config says about a remote model (directly, or through its card)."""

    inputs: Specs | None = None
    outputs: Specs | None = None
    classifier: ClassifierInfo | None = None
    source: str = "the config"  # for messages

    @classmethod
    def of(cls, spec: RemoteSpec, card: ModelCard | None) -> Declared:
        """Inline ``inputs``/``outputs`` win over the card's; the classifier comes from the
        inline ``classifier`` or the card (the config allows one of the two)."""
        classifier = card.classifier if card else None
        if spec.classifier is not None:
            c = spec.classifier
            classifier = ClassifierInfo(tuple(c.class_labels), c.label_output,
                                        c.scores_output, tuple(c.features))
        inputs, outputs = _decl(spec.inputs), _decl(spec.outputs)
        if card is not None:
            inputs = card.inputs if inputs is None else inputs
            outputs = card.outputs if outputs is None else outputs
        return cls(inputs, outputs, classifier,
                   f"the config (card {card.path})" if card else "the config")


@dataclass(frozen=True)
class Resolved:
    """The signature and classifier used, what could not be learned, what disagrees."""

    signature: Signature
    classifier: ClassifierInfo | None
    notes: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def resolve(declared: Declared, remote: RemoteMetadata) -> Resolved:
    notes: list[str] = []
    mismatches: list[str] = []
    src = declared.source
    for kind, mine, theirs in (("inputs", declared.inputs, remote.inputs),
                               ("outputs", declared.outputs, remote.outputs)):
        if mine is not None and theirs is not None and not same_specs(
                mine, theirs, trailing_one=kind == "outputs"):
            mismatches.append(f"{kind}: {src} declares {describe(mine)}, the remote reports "
                              f"{describe(theirs)}")
    inputs = declared.inputs if declared.inputs is not None else remote.inputs
    outputs = declared.outputs if declared.outputs is not None else remote.outputs
    if inputs is None:
        notes.append("inputs unknown: the remote's metadata lists none and the config "
                     "declares none, so requests are passed through unchecked (the remote's "
                     "own validation applies) and shadow calls are not batched")
    if outputs is None:
        notes.append("outputs unknown: the remote's metadata lists none and the config "
                     "declares none, so output names are known only from answers")
    classifier = declared.classifier or remote.classifier
    mine_c, theirs_c = declared.classifier, remote.classifier
    if mine_c and theirs_c and mine_c.class_labels != theirs_c.class_labels:
        mismatches.append(f"class labels: {src} declares {list(mine_c.class_labels)}, the "
                          f"remote reports {list(theirs_c.class_labels)}")
    if classifier is None:
        notes.append("class labels unknown: no card or classifier in the config and none in "
                      "the remote's metadata, so answers are recorded as raw tensors, not "
                      "as labels and class scores")
    elif outputs is not None:
        names = {s.name for s in outputs}
        for key in ("label_output", "scores_output"):
            if getattr(classifier, key) not in names:
                mismatches.append(f"classifier: {key} {getattr(classifier, key)!r} is not "
                                  f"among the outputs {sorted(names)}")
    signature = Signature(inputs or (), outputs or (), inputs_known=inputs is not None,
                          outputs_known=outputs is not None)
    return Resolved(signature, classifier, notes, mismatches)


def describe(specs: Specs | None) -> str:
    if specs is None:
        return "(none listed)"
    return "[" + ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in specs) + "]"
