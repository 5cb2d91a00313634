"""Build the bundled breast-cancer demo models, their model cards and the held-out sample.

Run from anywhere with the ``train`` extra installed::

    pip install -e '.[train]'
    python models/build.py

Everything is seeded, so a re-run reproduces the same metrics, cards and (with the same
scikit-learn / skl2onnx / onnx versions) byte-identical ``model.onnx`` files.

Outputs (relative to this directory)::

    <name>/1/model.onnx    ONNX graph: input "input" FP32 [N, 30] -> "label" INT64 [N],
                           "probabilities" FP32 [N, 2]
    <name>/1/card.json     model card (see README.md)
    samples/breast-cancer-holdout.jsonl   the held-out test split, one JSON object per row
    README.md              the metrics table between the "metrics" markers is regenerated
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

MODELS_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = MODELS_DIR / "samples"
SAMPLE_FILE = SAMPLES_DIR / "breast-cancer-holdout.jsonl"
README = MODELS_DIR / "README.md"

SEED = 42
TEST_SIZE = 0.25
VERSION = "1"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
INPUT_NAME = "input"
LABEL_OUTPUT = "label"
SCORES_OUTPUT = "probabilities"
N_BINS = 10
PROBA_ATOL = 1e-4
METRICS_START = "<!-- metrics:start -->"
METRICS_END = "<!-- metrics:end -->"


def make_models() -> dict[str, tuple[Any, str]]:
    """name -> (unfitted estimator, one-sentence description). Insertion order = build order."""
    return {
        "bc-logreg": (
            Pipeline(
                [
                    ("scaler", StandardScaler()),
                    ("clf", LogisticRegression(max_iter=1000, random_state=SEED)),
                ]
            ),
            "Champion: standardized logistic regression predicting whether a breast "
            "tumour is malignant or benign from 30 FNA cell-nucleus measurements.",
        ),
        "bc-gbt": (
            GradientBoostingClassifier(
                n_estimators=100, max_depth=3, learning_rate=0.1, random_state=SEED
            ),
            "Challenger: gradient-boosted trees (100 x depth 3) predicting whether a breast "
            "tumour is malignant or benign from 30 FNA cell-nucleus measurements.",
        ),
        "bc-rf": (
            RandomForestClassifier(n_estimators=100, max_depth=8, random_state=SEED, n_jobs=1),
            "Challenger: random forest (100 trees, max depth 8) predicting whether a breast "
            "tumour is malignant or benign from 30 FNA cell-nucleus measurements.",
        ),
        # The heavy candidate of the shadow-isolation benchmark: deep randomised trees, many
        # of them, so that one call costs several times the champion's and a 64-row batch
        # ~100x (loadtests/model_cost.py), in ~2 MB.
        "bc-heavy": (
            ExtraTreesClassifier(n_estimators=1000, min_samples_leaf=5, random_state=SEED,
                                 n_jobs=1),
            "Heavy challenger: extra trees (1000 randomised trees, 5 samples per leaf) "
            "predicting whether a breast tumour is malignant or benign from 30 FNA "
            "cell-nucleus measurements; several times the champion's inference cost.",
        ),
    }


# --------------------------------------------------------------------------- helpers


def sig(x: float, digits: int = 8) -> float:
    """Round to ``digits`` significant digits (JSON-friendly, stable)."""
    x = float(x)
    if x == 0.0 or not np.isfinite(x):
        return 0.0 if x == 0.0 else x
    return float(f"{x:.{digits - 1}e}")


def f32_json(x: float) -> float:
    """Shortest decimal that round-trips to the same float32 (exact FP32 input value)."""
    return float(str(np.float32(x)))


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def feature_stats(X_train: np.ndarray, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per-feature training-split summary for drift checks (PSI).

    Bins are the training deciles: edges[0] = min, edges[10] = max, and bin i holds
    edges[i] <= x < edges[i + 1] (the last bin also takes x == max). Out-of-range values
    belong to the first/last bin, i.e. ``np.searchsorted(edges[1:-1], x, side="right")``.
    Fractions are computed against the rounded edges that are written to the card.
    """
    stats: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        col = X_train[:, j]
        edges = [sig(e) for e in np.quantile(col, np.linspace(0.0, 1.0, N_BINS + 1))]
        idx = np.searchsorted(np.asarray(edges[1:-1]), col, side="right")
        counts = np.bincount(idx, minlength=N_BINS)
        stats[name] = {
            "mean": sig(col.mean()),
            "std": sig(col.std()),
            "min": sig(col.min()),
            "max": sig(col.max()),
            "bin_edges": edges,
            "bin_fractions": [sig(c / len(col)) for c in counts],
        }
    return stats


def export_onnx(name: str, model: Any, n_features: int) -> bytes:
    onx = convert_sklearn(
        model,
        name=name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        final_types=[
            (LABEL_OUTPUT, Int64TensorType([None])),
            (SCORES_OUTPUT, FloatTensorType([None, 2])),
        ],
        options={id(model): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    # Pin everything that could vary between runs / machines.
    onx.producer_name = "skl2onnx"
    onx.producer_version = skl2onnx.__version__
    onx.domain = "shadowgate"
    onx.model_version = int(VERSION)
    onx.doc_string = ""
    onx.graph.doc_string = ""
    # skl2onnx collects opsets in a set: fix their order so the bytes do not depend on
    # PYTHONHASHSEED.
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in opsets:
        onx.opset_import.add(domain=domain, version=version)
    del onx.metadata_props[:]
    for key, value in (("name", name), ("version", VERSION)):
        prop = onx.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(onx)
    return onx.SerializeToString(deterministic=True)


def run_onnx(blob: bytes, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    label, proba = sess.run([LABEL_OUTPUT, SCORES_OUTPUT], {INPUT_NAME: X.astype(np.float32)})
    return np.asarray(label), np.asarray(proba)


def check_signature(blob: bytes, n_features: int) -> None:
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    outs = {o.name: o for o in sess.get_outputs()}
    problems = []
    if inp.name != INPUT_NAME or inp.type != "tensor(float)" or inp.shape[1] != n_features:
        problems.append(f"input {inp.name} {inp.type} {inp.shape}")
    if isinstance(inp.shape[0], int):
        problems.append(f"batch dimension is static: {inp.shape}")
    if list(outs) != [LABEL_OUTPUT, SCORES_OUTPUT]:
        problems.append(f"outputs {list(outs)}")
    elif outs[LABEL_OUTPUT].type != "tensor(int64)" or outs[SCORES_OUTPUT].type != "tensor(float)":
        problems.append(f"output types {[o.type for o in outs.values()]}")
    if problems:
        raise SystemExit("ONNX signature mismatch: " + "; ".join(problems))


def onnx_metrics(y: np.ndarray, label: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Held-out metrics from ONNX outputs; positive class for f1/precision/recall is 1."""
    p1 = proba[:, 1].astype(np.float64)  # raw FP32 scores: keeps ties exactly as served
    # FP32 sums over many trees can leave a score a hair outside [0, 1] (1.0000013, -1e-6).
    p = np.clip(proba.astype(np.float64), 0.0, 1.0)
    p /= p.sum(axis=1, keepdims=True)  # FP32 rows sum to 1 only within ~1e-7
    return {
        "split": "test",
        "rows": len(y),
        "accuracy": round(float(accuracy_score(y, label)), 6),
        "roc_auc": round(float(roc_auc_score(y, p1)), 6),
        "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 6),
        "f1": round(float(f1_score(y, label)), 6),
        "precision": round(float(precision_score(y, label)), 6),
        "recall": round(float(recall_score(y, label)), 6),
    }


def opset_text(blob: bytes) -> str:
    model = onnx.load_from_string(blob)
    ops = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    return ", ".join(f"{d} {v}" for d, v in sorted(ops.items()))


def metrics_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | role | accuracy | ROC AUC | log loss | F1 | precision | recall | size |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        m = r["metrics"]
        lines.append(
            f"| `{r['name']}` | {r['role']} | {m['accuracy']:.4f} | {m['roc_auc']:.4f} "
            f"| {m['log_loss']:.4f} | {m['f1']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} "
            f"| {r['size'] / 1024:.1f} KiB |"
        )
    return head + "\n".join(lines) + "\n"


def update_readme(table: str, rows_test: int) -> None:
    if not README.exists():
        return
    text = README.read_text(encoding="utf-8")
    if METRICS_START not in text or METRICS_END not in text:
        return
    before, rest = text.split(METRICS_START, 1)
    _, after = rest.split(METRICS_END, 1)
    block = (
        f"{METRICS_START}\n"
        f"Held-out test split ({rows_test} rows), computed from the ONNX models through "
        "onnxruntime; F1 / precision / recall treat class 1 (`benign`) as positive.\n\n"
        f"{table}{METRICS_END}"
    )
    README.write_text(before + block + after, encoding="utf-8")


# --------------------------------------------------------------------------- main


def main() -> int:
    data = load_breast_cancer()
    X_all: np.ndarray = data.data  # float64 with <= 7 significant digits (source CSV values)
    y_all: np.ndarray = data.target.astype(np.int64)
    names = [str(n) for n in data.feature_names]
    class_labels = [str(c) for c in data.target_names]
    assert X_all.shape == (569, 30) and class_labels == ["malignant", "benign"]

    row_ids = np.arange(len(X_all))
    X_train, X_test, y_train, y_test, _, id_test = train_test_split(
        X_all, y_all, row_ids, test_size=TEST_SIZE, random_state=SEED, stratify=y_all
    )
    # The gateway feeds FP32 to ONNX, so train and compare on exactly those values.
    X_train32 = X_train.astype(np.float32)
    X_test32 = X_test.astype(np.float32)
    stats = feature_stats(X_train, names)

    summary: list[dict[str, Any]] = []
    for i, (name, (model, description)) in enumerate(make_models().items()):
        model.fit(X_train32.astype(np.float64), y_train)
        blob = export_onnx(name, model, len(names))
        check_signature(blob, len(names))

        label, proba = run_onnx(blob, X_test32)
        sk_proba = model.predict_proba(X_test32.astype(np.float64))
        max_diff = float(np.max(np.abs(proba.astype(np.float64) - sk_proba)))
        if not max_diff <= PROBA_ATOL:
            raise SystemExit(
                f"{name}: ONNX probabilities differ from sklearn predict_proba by {max_diff:.3g} "
                f"(> {PROBA_ATOL}); refusing to write artifacts"
            )
        label_agree = int(np.sum(label == model.predict(X_test32.astype(np.float64))))

        out_dir = MODELS_DIR / name / VERSION
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "model.onnx").write_bytes(blob)
        digest = hashlib.sha256(blob).hexdigest()
        metrics = onnx_metrics(y_test, label, proba)
        card = {
            "name": name,
            "version": VERSION,
            "description": description,
            "task": "binary-classification",
            "framework": (
                f"scikit-learn {sklearn.__version__} exported with skl2onnx "
                f"{skl2onnx.__version__}, opset {opset_text(blob)}"
            ),
            "training_data": {
                "source": "sklearn.datasets.load_breast_cancer",
                "rows_total": len(X_all),
                "rows_train": len(X_train),
                "rows_test": len(X_test),
                "split": f"stratified, test_size={TEST_SIZE}, random_state={SEED}",
            },
            "features": names,
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, len(names)]}],
            "outputs": [
                {"name": LABEL_OUTPUT, "datatype": "INT64", "shape": [-1]},
                {"name": SCORES_OUTPUT, "datatype": "FP32", "shape": [-1, 2]},
            ],
            "class_labels": class_labels,
            "label_output": LABEL_OUTPUT,
            "scores_output": SCORES_OUTPUT,
            "metrics": metrics,
            "feature_stats": stats,
            "sha256": digest,
        }
        write_json(out_dir / "card.json", card)
        summary.append(
            {
                "name": name,
                "role": "champion" if i == 0 else "challenger",
                "metrics": metrics,
                "size": len(blob),
            }
        )
        print(
            f"{name}: {len(blob):>7} bytes sha256={digest[:12]} acc={metrics['accuracy']:.4f} "
            f"auc={metrics['roc_auc']:.4f} max|dp|={max_diff:.2e} "
            f"labels agree {label_agree}/{len(y_test)}"
        )

    SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    with SAMPLE_FILE.open("w", encoding="utf-8", newline="\n") as fh:
        for rid, x, y in zip(id_test, X_test32, y_test, strict=True):
            rec = {
                "row": int(rid),
                "features": [f32_json(v) for v in x],
                "label": int(y),
                "label_name": class_labels[int(y)],
            }
            fh.write(json.dumps(rec) + "\n")
    print(f"samples: {len(y_test)} rows -> {SAMPLE_FILE.relative_to(MODELS_DIR.parent)}")

    table = metrics_table(summary)
    update_readme(table, len(y_test))
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
