"""Parse and validate a config file as a whole; errors name the key path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.schema import Config, DeploymentSpec, GuardrailSpec, ModelSpec
from gateway.errors import ConfigError


@dataclass(frozen=True)
class LoadedConfig:
    """A valid config plus where it came from."""

    config: Config
    path: Path | None
    revision: str
    repository: Path

    def model_dir(self, spec: ModelSpec) -> Path:
        base = self.path.parent if self.path else Path.cwd()
        if spec.path:
            return (base / spec.path).resolve()
        return (self.repository / spec.name / spec.version).resolve()


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def resolve_ref(ref: str, models: list[ModelSpec]) -> ModelSpec | None:
    """'name' (when a single version is loaded) or 'name:version'."""
    name, _, version = ref.partition(":")
    found = [m for m in models if m.name == name and (not version or m.version == version)]
    return found[0] if len(found) == 1 else None


def _check_refs(config: Config) -> list[str]:
    errors: list[str] = []
    seen: set[str] = set()
    for i, m in enumerate(config.models):
        if m.ref in seen:
            errors.append(f"models[{i}]: model {m.ref} declared twice")
        seen.add(m.ref)
        if m.remote and m.python:
            errors.append(f"models[{i}]: give at most one of 'remote' and 'python'")
    model_names = {m.name for m in config.models}
    dep_names: set[str] = set()
    for d, dep in enumerate(config.deployments):
        where = f"deployments[{d}]"
        if dep.name in dep_names:
            errors.append(f"{where}.name: deployment {dep.name!r} declared twice")
        if dep.name in model_names:
            errors.append(f"{where}.name: {dep.name!r} is also a model name; clients could "
                          "not tell them apart")
        dep_names.add(dep.name)
        errors.extend(_check_deployment(dep, where, config.models))
    default = config.server.default_deployment
    if default is not None and default not in dep_names:
        errors.append(f"server.default_deployment: {default!r} is not a deployment; expected "
                      f"one of {sorted(dep_names)}")
    return errors


def _check_deployment(dep: DeploymentSpec, where: str, models: list[ModelSpec]) -> list[str]:
    errors: list[str] = []
    roles: dict[str, str] = {}

    def check(ref: str, key: str) -> None:
        spec = resolve_ref(ref, models)
        if spec is None:
            names = sorted(m.ref for m in models)
            errors.append(f"{where}.{key}: model {ref!r} is not declared (or is ambiguous: "
                          f"use name:version); declared: {names}")
        elif spec.ref in roles:
            errors.append(f"{where}.{key}: model {spec.ref} already serves as "
                          f"{roles[spec.ref]} in this deployment")
        else:
            roles[spec.ref] = key

    check(dep.champion, "champion")
    for i, canary in enumerate(dep.canaries):
        check(canary.model, f"canaries[{i}].model")
    for i, shadow in enumerate(dep.shadows):
        check(shadow.model, f"shadows[{i}].model")
    total = sum(c.weight for c in dep.canaries)
    if total > 100 + 1e-9:
        errors.append(f"{where}.canaries: weights add up to {total:g}%, expected at most 100")
    if dep.rollout is not None:
        errors.extend(_check_rollout(dep, f"{where}.rollout", models, roles, total))
    return errors


def _check_rollout(dep: DeploymentSpec, where: str, models: list[ModelSpec],
                   roles: dict[str, str], static_weight: float) -> list[str]:
    """The candidate is a declared model serving no other role here; stages in order."""
    assert dep.rollout is not None
    errors: list[str] = []
    spec = resolve_ref(dep.rollout.candidate, models)
    if spec is None:
        errors.append(f"{where}.candidate: model {dep.rollout.candidate!r} is not declared "
                      f"(or is ambiguous: use name:version); declared: "
                      f"{sorted(m.ref for m in models)}")
    elif spec.ref in roles:
        errors.append(f"{where}.candidate: model {spec.ref} already serves as "
                      f"{roles[spec.ref]} in this deployment; a rollout adds it itself")
    last_weight, seen_canary = 0.0, False
    stages = dep.rollout.stages
    for i, stage in enumerate(stages):
        at = f"{where}.stages[{i}]"
        if stage.kind == "canary":
            if stage.weight is None:
                errors.append(f"{at}.weight: a canary stage needs a weight (percent of users)")
            elif stage.weight <= last_weight:
                errors.append(f"{at}.weight: weights must rise from stage to stage; got "
                              f"{stage.weight:g} after {last_weight:g}")
            elif stage.weight + static_weight > 100 + 1e-9:
                errors.append(f"{at}.weight: {stage.weight:g}% plus the deployment's "
                              f"canaries ({static_weight:g}%) is over 100%")
            else:
                last_weight = stage.weight
            seen_canary = True
        elif stage.weight is not None:
            errors.append(f"{at}.weight: only canary stages have a weight")
        if stage.kind == "shadow" and seen_canary:
            errors.append(f"{at}.kind: a shadow stage must come before the canary stages")
        if stage.kind == "promote" and i != len(stages) - 1:
            errors.append(f"{at}.kind: promotion must be the last stage")
        if stage.gates:
            try:
                GuardrailSpec.model_validate({**dep.guardrails.model_dump(), **stage.gates})
            except ValidationError as exc:
                errors.extend(f"{at}.gates.{key_path(e['loc'])}: {e['msg']}"
                              for e in exc.errors())
    return errors


def validate(data: Any, path: Path | None = None, raw: bytes = b"") -> LoadedConfig:
    """Validate parsed YAML; raises ConfigError with every problem found."""
    if not isinstance(data, dict):
        raise ConfigError([f"(root): expected a mapping, got {type(data).__name__}"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{key_path(e['loc'])}: {e['msg']}"
                           + (f" (got {e['input']!r})" if e["type"] != "missing"
                              and not isinstance(e["input"], dict | list) else "")
                           for e in exc.errors()]) from None
    errors = _check_refs(config)
    if errors:
        raise ConfigError(errors)
    base = path.parent if path else Path.cwd()
    revision = config.revision or hashlib.sha256(raw).hexdigest()[:12]
    return LoadedConfig(config, path, revision, (base / config.model_repository).resolve())


def load(path: Path) -> LoadedConfig:
    """Read, parse and validate a YAML config file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from None
    return validate(data, path, raw)
