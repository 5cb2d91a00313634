"""Writing a promotion back into the config file, when a person asks for it.

The running gateway serves a promoted candidate as the champion at once (the rollout's state
in Redis says so); the file still names the old champion and the rollout. ``promote_in_file``
makes the file say what is served: the deployment's champion becomes the candidate, which is
removed from its canaries and shadows, and the rollout section goes. The old file is kept
beside it (``.bak``); the new one is written to a temporary name and renamed over, so a
reader never sees half a file. Comments are not kept (the YAML is read and written as data):
the backup keeps them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from gateway.config.load import validate
from gateway.errors import ConfigError


def promote_in_file(path: Path, deployment: str, candidate: str) -> Path:
    """Rewrite ``path`` with ``candidate`` as the champion of ``deployment``; returns the
    backup's path. Raises ConfigError when the file or the result is not valid."""
    raw = path.read_bytes()
    data: Any = yaml.safe_load(raw)
    deployments = data.get("deployments") if isinstance(data, dict) else None
    spec = next((d for d in deployments or () if isinstance(d, dict)
                 and d.get("name") == deployment), None)
    if spec is None:
        raise ConfigError([f"{path}: no deployment {deployment!r} to promote in"])
    name = candidate.partition(":")[0]

    def other(entry: Any) -> bool:
        model = str(entry.get("model", "")) if isinstance(entry, dict) else ""
        return model not in (candidate, name)

    spec["champion"] = candidate
    spec.pop("rollout", None)
    for key in ("canaries", "shadows"):
        if key in spec:
            spec[key] = [e for e in spec[key] if other(e)]
    text = yaml.safe_dump(data, sort_keys=False).encode()
    validate(yaml.safe_load(text), path, text)  # the result must load, or nothing is written
    backup = path.with_name(path.name + ".bak")
    shutil.copyfile(path, backup)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(text)
    os.replace(partial, path)
    return backup
