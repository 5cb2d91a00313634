"""What the gateway says about what it serves, for HTTP and gRPC alike: model metadata,
Triton's model configuration, statistics and repository index, and the V2 extensions.

Plain dicts in the V2 REST (and Triton) JSON forms; gRPC builds its messages from them.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.backends.base import Backend
from gateway.errors import NotFound
from gateway.protocol.signature import TensorSpec
from gateway.snapshot import Deployment, Snapshot

# What GET /v2 and gRPC ServerMetadata advertise: only what is implemented.
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics", "model_repository",
              "parameters")
# Triton's model config data types; BYTES is TYPE_STRING there.
_CONFIG_TYPES = {"BYTES": "TYPE_STRING"}
_BACKENDS = {"onnxruntime_onnx": "onnxruntime"}
MAX_INT32 = 2**31 - 1


def backend_metadata(backend: Backend, name: str | None = None) -> dict[str, Any]:
    """V2 model metadata of one model (``name``: the name it is addressed by)."""
    meta: dict[str, Any] = {
        "name": name or backend.name,
        "versions": [backend.version],
        "platform": backend.platform,
        "inputs": [s.as_json() for s in backend.signature.inputs],
        "outputs": [s.as_json() for s in backend.signature.outputs],
    }
    info = backend.classifier
    if info is not None:
        meta["parameters"] = {"class_labels": list(info.class_labels),
                              "label_output": info.label_output,
                              "scores_output": info.scores_output,
                              "features": list(info.features)}
    unknown = backend.signature.unknown_parts
    if unknown:
        # An empty list here would read as "takes no inputs"; say it is not known instead.
        meta.setdefault("parameters", {}).update({
            "unknown": list(unknown),
            "note": f"{' and '.join(unknown)} not known: the model's server did not list "
                    "them and the config declares none; "
                    + ("requests are passed through unchecked, the model's server validates "
                       "them" if "inputs" in unknown else "outputs are known from answers")})
    return meta


def target_metadata(snap: Snapshot, target: Deployment | Backend) -> dict[str, Any]:
    """Model metadata of what a name resolved to: a deployment shows its champion's
    signature, no versions, and its traffic plan under ``parameters``."""
    if not isinstance(target, Deployment):
        return backend_metadata(target)
    meta = backend_metadata(target.champion, target.spec.name)
    meta["versions"] = []  # a deployment is addressed by name only
    meta.setdefault("parameters", {}).update({
        "deployment": True,
        "champion": target.plan.champion,
        "canaries": {c.model: (c.hi - c.lo) / 100 for c in target.plan.canaries},
        "shadows": [s.model for s in target.plan.shadows],
        "revision": snap.revision,
    })
    return meta


def _row_bytes(specs: tuple[TensorSpec, ...]) -> int:
    """Bytes of one row of every input in the binary form (a BYTES element: at least its
    4-byte length)."""
    total = 0
    for spec in specs:
        per = 4 if spec.datatype == "BYTES" else _ITEMSIZE.get(spec.datatype, 1)
        total += math.prod(max(d, 1) for d in spec.shape[1:]) * per
    return max(total, 1)


_ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2,
             "UINT32": 4, "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8}


def _config_tensor(spec: TensorSpec, batched: bool) -> dict[str, Any]:
    dims = list(spec.shape[1:] if batched and spec.shape and spec.shape[0] == -1
                else spec.shape)
    tensor: dict[str, Any] = {"name": spec.name,
                              "data_type": _CONFIG_TYPES.get(spec.datatype,
                                                             f"TYPE_{spec.datatype}")}
    if dims:
        tensor["dims"] = dims
    else:  # a tensor of one value per row: Triton writes dims [1] reshaped to []
        tensor["dims"] = [1]
        tensor["reshape"] = {"shape": []}
    return tensor


def model_config(target: Deployment | Backend, max_body_bytes: int) -> dict[str, Any]:
    """Triton's model configuration, as far as the gateway can honestly give it.

    A model whose every input has a dynamic first dimension batches along it: its
    ``max_batch_size`` is the most rows whose inputs, in the binary form, fit in the body
    limit, and ``dims`` leave the batch dimension out (as Triton's); else
    ``max_batch_size`` is 0 and ``dims`` are the full shapes. A deployment takes its
    champion's signature; its name is the deployment's.
    """
    backend = target.champion if isinstance(target, Deployment) else target
    name = target.spec.name if isinstance(target, Deployment) else backend.name
    signature = backend.signature
    batched = signature.batchable
    return {
        "name": name,
        "platform": backend.platform,
        "backend": _BACKENDS.get(backend.platform, backend.platform),
        "max_batch_size": (min(MAX_INT32, max_body_bytes // _row_bytes(signature.inputs))
                           if batched else 0),
        "input": [_config_tensor(s, batched) for s in signature.inputs],
        "output": [_config_tensor(s, batched) for s in signature.outputs],
    }


def _deployment_stats(dep: Deployment) -> dict[str, Any]:
    # A deployment has no version (its metrics say version=""); Triton's clients read the
    # statistics' versions as integers (perf_analyzer fails on ""), so here it is "0".
    return {**dep.stats.as_triton(), "version": DEPLOYMENT_STATS_VERSION}


DEPLOYMENT_STATS_VERSION = "0"


def model_stats(snap: Snapshot, name: str | None = None, version: str | None = None
                ) -> list[dict[str, Any]]:
    """Triton's statistics: of every deployment and model version (``name`` None), of a
    deployment, or of a model's versions (``version`` None: all of them). Raises NotFound."""
    if name is None:
        return ([_deployment_stats(d) for d in snap.deployments.values()]
                + [mm.stats.as_triton() for mm in snap.model_metrics.values()])
    dep = snap.deployments.get(name)
    if dep is not None:
        if version in (None, "", DEPLOYMENT_STATS_VERSION):
            return [_deployment_stats(dep)]
        raise NotFound(f"{name!r} is a deployment and has no version {version!r}; its "
                       f"statistics are under version {DEPLOYMENT_STATS_VERSION!r}, its "
                       f"champion's under /v2/models/{dep.champion.name}/stats")
    found = [mm.stats.as_triton() for mm in snap.model_metrics.values()
             if mm.stats.name == name and (not version or mm.stats.version == version)]
    if not found:
        if name in snap.models.versions:
            raise NotFound(f"model {name!r} has no version {version!r}; versions: "
                           f"{sorted(snap.models.versions[name])}")
        raise NotFound(f"model {name!r} not found; deployments: {sorted(snap.deployments)}, "
                       f"models: {sorted(snap.models.versions)}")
    return found


def repository_index(snap: Snapshot) -> list[dict[str, str]]:
    """Deployments (no version) and model versions, all READY: what is loaded is served."""
    index = [{"name": name, "state": "READY"} for name in sorted(snap.deployments)]
    index += [{"name": b.name, "version": b.version, "state": "READY"}
              for b in sorted(snap.models.by_ref.values(), key=lambda b: (b.name, b.version))]
    return index
