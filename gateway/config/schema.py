"""The deployment config file's schema: plain data, validated by pydantic.

Cross-field checks (references between models and deployments) live in load.py, so that
every error names its key path, e.g. ``deployments[0].canaries[1].weight``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.config.rollout import RolloutSpec

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
Percent = Annotated[float, Field(ge=0, le=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                   "INT64", "FP16", "FP32", "FP64", "BYTES"]


class TensorDecl(Strict):
    """One input or output of a remote model, as V2 metadata states it."""

    name: Annotated[str, Field(min_length=1)]
    datatype: Datatype
    shape: list[Annotated[int, Field(ge=-1)]] = Field(description="-1 for a dynamic dimension")


class ClassifierSpec(Strict):
    """How to read a classifier's answer, as a model card says it."""

    class_labels: Annotated[list[str], Field(min_length=1)] = Field(
        description="class names in score-column order; an integer label indexes them")
    label_output: str = "label"
    scores_output: str = "probabilities"
    features: list[str] = Field(default_factory=list, description="feature order of the "
                                "input rows (for POST /predict)")

    @field_validator("class_labels", "features")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"{twice} listed twice")
        return value


class RemoteSpec(Strict):
    """A model served by another V2 server (Shadowgate, Triton, MLServer, KServe).

    What the gateway cannot learn from the remote's metadata can be declared here: a model
    ``card`` (or an inline ``classifier``) so that answers are recorded as labels and class
    scores, and ``inputs``/``outputs``, which win over the remote's metadata."""

    url: Annotated[str, Field(pattern=r"^https?://")]
    model: str | None = Field(None, description="remote model name; default: the local name")
    version: str | None = Field(None, description="remote model version; default: any")
    timeout_ms: Annotated[float, Field(gt=0)] = 1000
    max_connections: Annotated[int, Field(ge=1)] = 100
    card: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="model card JSON file (as models/*/*/card.json), relative to the "
        "config file")
    classifier: ClassifierSpec | None = None
    inputs: Annotated[list[TensorDecl], Field(min_length=1)] | None = None
    outputs: Annotated[list[TensorDecl], Field(min_length=1)] | None = None

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique_names(cls, value: list[TensorDecl] | None) -> list[TensorDecl] | None:
        names = [t.name for t in value or ()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tensor name(s) {twice} declared twice")
        return value


class ModelSpec(Strict):
    """One concrete model version the gateway loads."""

    name: Name
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] = "1"
    path: str | None = Field(None, description="directory with model.onnx and card.json; "
                             "default: <model_repository>/<name>/<version>")
    remote: RemoteSpec | None = None
    python: str | None = Field(None, pattern=r"^[\w.]+:[\w.]+$",
                               description="custom backend factory 'module:callable'")
    options: dict[str, Any] = Field(default_factory=dict)
    threads: Annotated[int, Field(ge=1, le=64)] = 1
    offload: Literal["auto", "always", "never"] = "auto"
    allow_nonfinite: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class CanarySpec(Strict):
    model: str
    weight: Percent

    @field_validator("weight")
    @classmethod
    def _hundredths(cls, value: float) -> float:
        if abs(value * 100 - round(value * 100)) > 1e-6:
            raise ValueError(f"weight must be a multiple of 0.01 percent, got {value}")
        return round(value, 2)


class ShadowSpec(Strict):
    model: str
    sample_percent: Percent = 100.0
    timeout_ms: Annotated[float, Field(gt=0)] = 1000


class RoutingSpec(Strict):
    """Where the sticky routing key comes from; tried in the order header, query, json_field."""

    header: str | None = None
    query: str | None = None
    json_field: str | None = None
    salt: str | None = Field(None, description="default: the deployment name")
    allow_force: bool = Field(False, description="let the force header pick a variant")
    force_header: str = "x-shadowgate-variant"

    @field_validator("header", "force_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value


class RetentionSpec(Strict):
    max_len: Annotated[int, Field(ge=1)] | None = 1_000_000
    max_age_s: Annotated[float, Field(gt=0)] | None = None


class DecisionSpec(Strict):
    """The decision a classifier's answer drives, and what each outcome of it is worth."""

    positive_class: str = Field(description="the class whose score triggers the action")
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    action: str = Field("act", description="what acting means, in words for the report "
                        "(e.g. 'refer for biopsy')")
    values: dict[Literal["true_positive", "false_positive", "true_negative",
                         "false_negative"], float] = Field(
        default_factory=dict, description="value of one decision by outcome (missing: 0); "
        "a positive is the action taken")
    value_unit: str = "value"


class OutcomeSpec(Strict):
    """A business outcome posted as feedback, compared between canary and champion users."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")]
    better: Literal["higher", "lower"] = "higher"
    missing: float | None = Field(None, description="value of a request without this outcome "
                                  "(e.g. 0 for a conversion); None: such requests are left out")
    max_drop: Annotated[float, Field(ge=0)] = Field(
        0.0, description="guardrail: canary users may be worse by at most this relative share "
        "(0.02 = 2%) before the candidate is rejected")


class GuardrailSpec(Strict):
    """The bounds the report's verdict (and the rollout's gates) hold a candidate to."""

    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    min_pairs: Annotated[int, Field(ge=1)] = 200
    min_labels: Annotated[int, Field(ge=1)] = 100
    require_labels: bool = Field(True, description="no 'ready to promote' without enough "
                                 "labels to compare accuracy")
    max_accuracy_drop: Annotated[float, Field(ge=0, le=1)] = Field(
        0.01, description="the candidate's accuracy may be lower by at most this")
    min_agreement: Annotated[float, Field(ge=0, le=1)] | None = None
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_p99_latency_ratio: Annotated[float, Field(gt=0)] = 2.0
    min_coverage: Annotated[float, Field(ge=0, le=1)] = Field(
        0.9, description="share of requests the candidate must have seen (not dropped or "
        "shed) before a verdict")
    max_srm_p: Annotated[float, Field(gt=0, lt=1)] = 0.001


class SegmentSpec(Strict):
    """Break the comparison down by an input feature, in bins of its training distribution."""

    feature: str
    bins: Annotated[int, Field(ge=2, le=10)] = 4


class DeploymentSpec(Strict):
    name: Name
    champion: str
    canaries: list[CanarySpec] = Field(default_factory=list)
    shadows: list[ShadowSpec] = Field(default_factory=list)
    routing: RoutingSpec = RoutingSpec()
    log_inputs: bool = True
    input_sample_percent: Percent = 100.0
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    decision: DecisionSpec | None = None
    outcomes: list[OutcomeSpec] = Field(default_factory=list)
    guardrails: GuardrailSpec = Field(default_factory=GuardrailSpec)
    segments: list[SegmentSpec] = Field(default_factory=list)
    rollout: RolloutSpec | None = None


class MirrorSpec(Strict):
    """Shadow micro-batching (per shadow model), and the CPU local shadows may take."""

    queue_size: Annotated[int, Field(ge=1)] = 10_000
    max_batch: Annotated[int, Field(ge=1, le=4096)] = 64
    max_wait_ms: Annotated[float, Field(ge=0)] = Field(
        50.0, description="how long a micro-batch may gather after its first job (it goes "
        "as soon as max_batch jobs are there)")
    cpu_budget: Annotated[float, Field(gt=0, le=1024)] | None = Field(
        0.5, description="cores: CPU seconds per second that all local (ONNX) shadow batches "
        "may take together, wherever they run; batches beyond it are shed (recorded with "
        "status 'shed', counted in shadowgate_shadow_dropped_total{reason=\"shed\"}); "
        "null: no limit")
    isolation: Literal["auto", "inline", "thread", "process"] = Field(
        "auto", description="where local shadow batches run: 'inline' on the event loop, "
        "'thread' on a thread per model, 'process' in the gateway's shadow process, 'auto': "
        "inline while a batch is cheap (2 ms of CPU), else the shadow process")
    process_idle: bool = Field(
        True, description="run the shadow process SCHED_IDLE (Linux): only on CPU time that "
        "nothing else wants; what it cannot keep up with fills its queues and is dropped")
    process_nice: Annotated[int, Field(ge=0, le=19)] = Field(
        10, description="niceness of the shadow process when it is not SCHED_IDLE (higher: "
        "yields more readily to the request path)")


class ServerSpec(Strict):
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    default_deployment: str | None = Field(None, description="for POST /predict; default: the "
                                           "only deployment")


class Config(Strict):
    """The whole file."""

    version: Literal[1] = 1
    revision: str | None = Field(None, description="default: a hash of the file's content")
    model_repository: str = "../models"
    models: list[ModelSpec]
    deployments: list[DeploymentSpec] = Field(default_factory=list)
    mirror: MirrorSpec = Field(default_factory=MirrorSpec)
    server: ServerSpec = ServerSpec()
