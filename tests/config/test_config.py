"""Config validation: every problem reported, each under its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config.load import key_path, load, resolve_ref, validate
from gateway.errors import ConfigError
from tests.helpers import ROOT, config

MODELS2 = [{"name": "bc-logreg", "version": "1"}, {"name": "bc-gbt", "version": "1"}]


def errors(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(data)
    return info.value.errors


def dep(**fields: Any) -> dict[str, Any]:
    return {"name": "d", "champion": "bc-logreg", **fields}


@pytest.mark.parametrize("name", ["example.yaml", "canary-demo.yaml"])
def test_bundled_configs_are_valid(name: str) -> None:
    cfg = load(ROOT / "config" / name)
    assert cfg.path == ROOT / "config" / name
    assert cfg.repository == ROOT / "models"
    assert [m.ref for m in cfg.config.models] == ["bc-logreg:1", "bc-gbt:1", "bc-rf:1"]
    assert cfg.config.deployments[0].name == "breast-cancer"
    assert len(cfg.revision) == 12


def test_canary_demo_values() -> None:
    spec = load(ROOT / "config" / "canary-demo.yaml").config.deployments[0]
    assert [(c.model, c.weight) for c in spec.canaries] == [("bc-gbt", 10.0)]
    assert spec.routing.header == "x-user-id" and spec.routing.allow_force


@pytest.mark.parametrize(("deployment", "path", "words"), [
    (dep(champion="nope"), "deployments[0].champion", ("'nope'", "not declared",
                                                        "bc-logreg:1")),
    (dep(canaries=[{"model": "bc-gbt", "weight": 5}, {"model": "ghost", "weight": 5}]),
     "deployments[0].canaries[1].model", ("'ghost'", "not declared")),
    (dep(shadows=[{"model": "bc-logreg:2"}]), "deployments[0].shadows[0].model",
     ("'bc-logreg:2'",)),
    (dep(shadows=[{"model": "bc-logreg"}]), "deployments[0].shadows[0].model",
     ("bc-logreg:1", "already serves as champion")),
    (dep(canaries=[{"model": "bc-gbt", "weight": 101}]), "deployments[0].canaries[0].weight",
     ("less than or equal to 100", "101")),
    (dep(canaries=[{"model": "bc-gbt", "weight": -1}]), "deployments[0].canaries[0].weight",
     ("greater than or equal to 0",)),
    (dep(canaries=[{"model": "bc-gbt", "weight": 10.005}]),
     "deployments[0].canaries[0].weight", ("multiple of 0.01", "10.005")),
    (dep(canaries=[{"model": "bc-gbt", "weight": "ten"}]), "deployments[0].canaries[0].weight",
     ("number",)),
    (dep(canaries=[{"model": "bc-gbt"}]), "deployments[0].canaries[0].weight", ("required",)),
    (dep(shadows=[{"model": "bc-gbt", "sample_percent": 150}]),
     "deployments[0].shadows[0].sample_percent", ("100",)),
    (dep(shadows=[{"model": "bc-gbt", "timeout_ms": 0}]), "deployments[0].shadows[0].timeout_ms",
     ("greater than 0",)),
    (dep(routing={"header": "x-user", "hedaer": "typo"}), "deployments[0].routing.hedaer",
     ("Extra inputs",)),
    (dep(colour="blue"), "deployments[0].colour", ("Extra inputs", "blue")),
    (dep(name="bc-gbt"), "deployments[0].name", ("'bc-gbt'", "also a model name")),
    (dep(name="has space"), "deployments[0].name", ("pattern",)),
])
def test_deployment_errors_name_the_key_path(deployment: dict[str, Any], path: str,
                                             words: tuple[str, ...]) -> None:
    [error] = errors(config([deployment], models=MODELS2))
    assert error.startswith(f"{path}: "), error
    for word in words:
        assert word in error, (word, error)


def test_canary_weights_add_up_to_at_most_100() -> None:
    canaries = [{"model": "bc-gbt", "weight": 60}, {"model": "bc-rf", "weight": 40.01}]
    [error] = errors(config([dep(canaries=canaries)]))
    assert error.startswith("deployments[0].canaries: ") and "100.01" in error


def test_weights_of_hundredths_are_kept() -> None:
    cfg = validate(config([dep(canaries=[{"model": "bc-gbt", "weight": 0.01},
                                         {"model": "bc-rf", "weight": 99.99}])]))
    assert [c.weight for c in cfg.config.deployments[0].canaries] == [0.01, 99.99]


@pytest.mark.parametrize(("data", "path", "words"), [
    (config(colour="blue"), "colour", ("Extra inputs",)),
    (config(version=2), "version", ("1",)),
    (config(models=[{"name": "bc-logreg", "versoin": "1"}]), "models[0].versoin",
     ("Extra inputs",)),
    (config(models=[{"name": "bc-logreg", "threads": 0}]), "models[0].threads",
     ("greater than or equal to 1",)),
    (config(models=[{"name": "bc-logreg", "offload": "sometimes"}]), "models[0].offload",
     ("'auto'",)),
    (config(mirror={"max_batch": 0}), "mirror.max_batch", ("greater than or equal to 1",)),
    (config(server={"max_body_bytes": 10}), "server.max_body_bytes", ("1024",)),
    (config(server={"default_deployment": "nope"}), "server.default_deployment",
     ("'nope'", "breast-cancer")),
    ({"deployments": []}, "models", ("required",)),
])
def test_top_level_errors_name_the_key_path(data: dict[str, Any], path: str,
                                            words: tuple[str, ...]) -> None:
    [error] = errors(data)
    assert error.startswith(f"{path}: "), error
    for word in words:
        assert word in error, (word, error)


def test_declared_twice() -> None:
    models = [*MODELS2, {"name": "bc-gbt", "version": "1"}]
    found = errors(config([dep(), dep()], models=models))
    assert "models[2]: model bc-gbt:1 declared twice" in found
    assert any(e.startswith("deployments[1].name: deployment 'd' declared twice") for e in found)


def test_remote_and_python_are_exclusive() -> None:
    models = [{"name": "bc-logreg"}, {"name": "x", "python": "a.b:c",
                                      "remote": {"url": "http://h:1"}}]
    assert errors(config([dep()], models=models)) == [
        "models[1]: give at most one of 'remote' and 'python'"]


def test_ambiguous_reference_needs_a_version() -> None:
    models = [{"name": "bc-logreg", "version": "1"}, {"name": "bc-logreg", "version": "2"}]
    [error] = errors(config([dep()], models=models))
    assert error.startswith("deployments[0].champion: ") and "name:version" in error
    validate(config([dep(champion="bc-logreg:2")], models=models))


def test_all_cross_reference_errors_at_once() -> None:
    found = errors(config([dep(name="bc-gbt", champion="a",
                               canaries=[{"model": "b", "weight": 1}],
                               shadows=[{"model": "c"}])], models=MODELS2))
    assert [e.split(":")[0] for e in found] == [
        "deployments[0].name", "deployments[0].champion", "deployments[0].canaries[0].model",
        "deployments[0].shadows[0].model"]


def test_every_schema_error_at_once() -> None:
    found = errors(config([dep(canaries=[{"model": "bc-gbt", "weight": 101},
                                         {"model": "bc-rf", "weight": 0.001}], colour=1)]))
    assert [e.split(":")[0] for e in found] == [
        "deployments[0].canaries[0].weight", "deployments[0].canaries[1].weight",
        "deployments[0].colour"]


def test_root_must_be_a_mapping() -> None:
    assert errors([1, 2]) == ["(root): expected a mapping, got list"]
    assert errors(None) == ["(root): expected a mapping, got NoneType"]


def test_key_path() -> None:
    assert key_path(("deployments", 0, "canaries", 1, "weight")) == \
        "deployments[0].canaries[1].weight"
    assert key_path(()) == "(root)"


def test_resolve_ref() -> None:
    cfg = validate(config())
    models = list(cfg.config.models)
    assert resolve_ref("bc-gbt", models) is models[1]
    assert resolve_ref("bc-gbt:1", models) is models[1]
    assert resolve_ref("bc-gbt:2", models) is None
    assert resolve_ref("nope", models) is None


# -- load(): files -----------------------------------------------------------------------------

def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - {name: bc-logreg\ndeployments: [\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    [error] = info.value.errors
    assert error.startswith(f"{path}: invalid YAML") and "line" in error


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config: No such file"):
        load(tmp_path / "absent.yaml")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load(write(tmp_path, ""))


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", yaml.safe_dump({
        "model_repository": "../repo",
        "models": [{"name": "a"}, {"name": "b", "version": "7", "path": "own/dir"}]}))
    cfg = load(path)
    assert cfg.repository == (tmp_path / "repo").resolve()
    a, b = cfg.config.models
    assert cfg.model_dir(a) == (tmp_path / "repo" / "a" / "1").resolve()
    assert cfg.model_dir(b) == (tmp_path / "conf" / "own" / "dir").resolve()


def test_revision_is_a_content_hash_unless_given(tmp_path: Path) -> None:
    text = yaml.safe_dump(config())
    one = load(write(tmp_path, text, "one.yaml")).revision
    assert load(write(tmp_path, text, "two.yaml")).revision == one
    assert load(write(tmp_path, text + "# changed\n", "three.yaml")).revision != one
    assert load(write(tmp_path, text + "revision: r42\n", "four.yaml")).revision == "r42"


def test_routing_headers_are_lowercased() -> None:
    cfg = validate(config([dep(routing={"header": "X-User-Id", "force_header": "X-Force"})]))
    routing = cfg.config.deployments[0].routing
    assert (routing.header, routing.force_header) == ("x-user-id", "x-force")


# -- remote models: card, inline classifier, declared signature -------------------------------

def remote_model(**remote: Any) -> list[dict[str, Any]]:
    return [{"name": "bc-logreg"},
            {"name": "far", "remote": {"url": "http://127.0.0.1:1", **remote}}]


CLASSIFIER = {"class_labels": ["malignant", "benign"], "label_output": "label",
              "scores_output": "probabilities", "features": ["a", "b"]}
OUTPUTS = [{"name": "label", "datatype": "INT64", "shape": [-1]},
           {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]


def test_remote_declarations_are_read() -> None:
    cfg = validate(config(models=remote_model(
        classifier=CLASSIFIER, inputs=[{"name": "input", "datatype": "FP32", "shape": [-1, 2]}],
        outputs=OUTPUTS)))
    spec = cfg.config.models[1].remote
    assert spec is not None and spec.classifier is not None and spec.outputs is not None
    assert spec.classifier.class_labels == ["malignant", "benign"]
    assert [t.shape for t in spec.outputs] == [[-1], [-1, 2]]
    assert validate(config(models=remote_model(card="cards/far.json"))).config.models[1] \
        .remote.card == "cards/far.json"


@pytest.mark.parametrize(("remote", "path", "words"), [
    ({"card": "c.json", "classifier": CLASSIFIER}, "models[1].remote",
     "at most one of 'card' and 'classifier'"),
    ({"classifier": {**CLASSIFIER, "class_labels": []}},
     "models[1].remote.classifier.class_labels", "at least 1"),
    ({"classifier": {**CLASSIFIER, "class_labels": ["a", "a"]}},
     "models[1].remote.classifier.class_labels", "['a'] listed twice"),
    ({"classifier": {"label_output": "label"}}, "models[1].remote.classifier.class_labels",
     "required"),
    ({"inputs": [{"name": "x", "datatype": "FP33", "shape": [1]}]},
     "models[1].remote.inputs[0].datatype", "'FP32'"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-2]}]},
     "models[1].remote.inputs[0].shape[0]", "greater than or equal to -1"),
    ({"inputs": []}, "models[1].remote.inputs", "at least 1"),
    ({"outputs": [OUTPUTS[0], OUTPUTS[0]]}, "models[1].remote.outputs",
     "['label'] declared twice"),
    ({"classifier": {**CLASSIFIER, "scores_output": "proba"}, "outputs": OUTPUTS},
     "models[1].remote.classifier.scores_output", "'proba' is not one of the declared"),
    ({"card": ""}, "models[1].remote.card", "at least 1"),
])
def test_remote_declaration_errors_name_the_key_path(remote: dict[str, Any], path: str,
                                                     words: str) -> None:
    found = errors(config(models=remote_model(**remote)))
    assert any(e.startswith(f"{path}:") and words in e for e in found), found


def test_a_remote_card_is_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(config(models=remote_model(card="cards/far.json"))))
    cfg = load(path)
    assert cfg.relative("cards/far.json") == (tmp_path / "cards" / "far.json").resolve()
    assert cfg.relative("/abs/card.json") == Path("/abs/card.json")
