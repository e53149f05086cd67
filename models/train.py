"""Train and export the reference ONNX models of kafka-onnx-scorer.

Run it through ``bash models/train.sh`` (which builds ``models/.venv`` from the
pinned ``models/requirements.txt``). Everything is generated from fixed seeds
on one BLAS thread, so a rerun with the same pins rewrites the same bytes.

Outputs (paths relative to the repository root):

* ``models/churn.onnx`` + ``models/churn.manifest.json``
    A real tabular binary classifier: Pipeline(StandardScaler, LogisticRegression)
    trained on 20,000 synthetic customers. Input ``features`` float32 [N, 14] in
    the field order of the ``features`` record of ``schemas/feature-event.avsc``.
* ``models/churn/<version>/model.onnx`` + ``manifest.json``: the churn model
    repository (``MODEL_REPOSITORY``), one folder per version (``CHURN_VERSIONS``).
    ``1.0.0`` is byte for byte ``models/churn.onnx``; ``1.1.0`` is retrained on the
    same data with L1 regularisation and balanced class weights, so its scores
    differ. Their manifests name no ``eventSchema``: both read the reference
    event (``schemas/feature-event.avsc``), the scorer's default reader schema.
* ``models/mlp.onnx`` + ``models/mlp.manifest.json``
    A heavier model for benchmarking only: MLPClassifier 256 -> 1792 -> 1792 -> 1
    (relu; sklearn uses a single logistic unit for a binary output, exported as
    two probability columns), briefly trained on 4,000 synthetic rows. Sized so
    that inference, not Kafka or decoding, bounds the scorer: ~3.7 M multiply-adds
    per row, ~50-60k rows/s with 2 intra-op threads on the 2-core dev machine.
* ``schemas/wide-feature-event.avsc``: the event schema of the mlp model
  (256 ``double`` features f000..f255), generated here so names stay in sync.
* ``test/fixtures/churn-expected.json``, ``test/fixtures/churn-1.1.0-expected.json``,
  ``test/fixtures/mlp-expected.json``:
  float32-exact input rows with sklearn's ``predict_proba[:, 1]`` and python
  onnxruntime's output for them; ``test/unit/models.test.ts`` checks
  onnxruntime-node against them.

Both models are exported with ``zipmap=False`` so their outputs are ``label``
(int64 [N]) and ``probabilities`` (float32 [N, 2]).
"""

from __future__ import annotations

import os

# Pin BLAS to one thread before numpy loads: multi-threaded reductions may
# change the last bits of the MLP weights from run to run.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SCHEMAS = ROOT / "schemas"
FIXTURES = ROOT / "test" / "fixtures"

SEED = 42
#: Opsets supported by onnxruntime 1.30 (node and python).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
#: Largest |onnxruntime - sklearn| accepted for a probability.
TOLERANCE = 1e-5
THRESHOLD = 0.5
FRAMEWORK = f"sklearn {sklearn.__version__} + skl2onnx {skl2onnx.__version__}"

#: Fields of the ``features`` record of schemas/feature-event.avsc, in order.
CHURN_FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract_months",
    "num_products",
    "has_autopay",
    "support_tickets_90d",
    "late_payments_12m",
    "sessions_30d",
    "avg_session_minutes",
    "days_since_last_login",
    "data_usage_gb",
    "discount_pct",
    "nps_score",
]
CHURN_ROWS = 20_000

MLP_WIDTH = 256
MLP_FEATURES = [f"f{i:03d}" for i in range(MLP_WIDTH)]
MLP_ROWS = 4_000
#: Hidden layers. 1792 x 1792 (3.67 M multiply-adds per row, 14.7 MB of float32
#: weights) makes inference the bottleneck of the benchmark: ~50-60k rows/s at its
#: best batch size with 2 intra-op threads on the 2-core AVX-512 dev machine, where
#: 1024 x 1024 ran ~150k rows/s and 2048 x 2048 ~48k (models/README.md).
MLP_HIDDEN = (1792, 1792)

#: Model versions (manifest, ONNX metadata, scored events, dead-letter headers): bump when a
#: model changes. mlp 2.0.0: hidden layers widened from 1024 to 1792.
VERSIONS = {"churn": "1.0.0", "mlp": "2.0.0"}

#: The churn repository, models/churn/<version>/: how each version's LogisticRegression is
#: fitted (same data, same split, same seed). 1.0.0 is the reference model; 1.1.0 is a
#: plausible retrain a team would canary: sparser (L1, stronger regularisation) and trained
#: with balanced class weights, which shifts its scores up (churners are the minority).
CHURN_VERSIONS = {
    "1.0.0": {"C": 1.0},
    "1.1.0": {"C": 0.05, "penalty": "l1", "solver": "liblinear", "class_weight": "balanced"},
}
MLP_EPOCHS = 4
MLP_ARCH = " -> ".join(str(n) for n in (MLP_WIDTH, *MLP_HIDDEN, 1))


# --------------------------------------------------------------------------- #
# Synthetic data
# --------------------------------------------------------------------------- #


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def generate_churn(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` synthetic customers and whether each churns within 90 days.

    Generative story: tenure drives contract length, product count and autopay;
    two unobserved traits, *engagement* and *satisfaction*, drive usage,
    support tickets and NPS; *financial stress* drives late payments. Churn is
    a Bernoulli draw whose log-odds rise with short tenure, month-to-month
    contracts, support tickets, late payments, low NPS, long absence and high
    bills, and fall with autopay, more products, usage and discounts. The
    unobserved traits also act on churn directly, so the best achievable AUC
    is well below 1.

    Returns ``X`` (float64 [n, 14], columns in ``CHURN_FEATURES`` order, every
    value a float32-representable number of the avsc type's kind) and ``y``
    (int64 [n], 1 = churn).
    """
    engagement = rng.standard_normal(n)
    satisfaction = rng.standard_normal(n)
    stress = rng.standard_normal(n)

    tenure = np.minimum(72, np.floor(rng.gamma(1.3, 20.0, n))).astype(np.int64)

    # Contract: month-to-month dominates for new customers.
    p_m2m = np.clip(0.75 - 0.008 * tenure, 0.15, 0.9)
    p_24_given_long = np.clip(0.3 + 0.006 * tenure, 0.0, 0.8)
    u = rng.random(n)
    contract = np.where(
        u < p_m2m, 1, np.where(u < p_m2m + (1 - p_m2m) * p_24_given_long, 24, 12)
    ).astype(np.int64)

    num_products = 1 + rng.binomial(4, np.clip(0.15 + 0.003 * tenure, 0.0, 0.6))

    discount = rng.choice(
        np.array([0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]),
        size=n,
        p=[0.55, 0.12, 0.12, 0.08, 0.07, 0.04, 0.02],
    )
    discount = np.where((contract == 24) & (discount == 0) & (rng.random(n) < 0.4), 10.0, discount)

    list_price = 25.0 + 18.0 * num_products + rng.normal(0.0, 10.0, n)
    monthly = np.round(np.clip(list_price * (1 - discount / 100.0), 15.0, 180.0), 2)
    total = np.round(tenure * monthly * rng.uniform(0.92, 1.04, n), 2)

    has_autopay = (
        rng.random(n) < np.clip(0.3 + 0.2 * (contract > 1) + 0.004 * tenure, 0.0, 0.95)
    ).astype(np.int64)

    sessions = np.minimum(
        300, rng.poisson(np.exp(2.3 + 0.5 * engagement + 0.1 * (num_products - 1)))
    )
    avg_minutes = np.where(
        sessions > 0,
        np.clip(np.round(rng.gamma(2.0, 4.0 * np.exp(0.25 * engagement)), 1), 0.5, 120.0),
        0.0,
    )
    days_since_login = np.where(
        sessions > 0,
        np.floor(rng.exponential(45.0 / (sessions + 1.0))),
        30.0 + np.floor(rng.exponential(60.0, n)),
    )
    days_since_login = np.minimum(365, days_since_login).astype(np.int64)
    data_usage = np.round(
        np.clip(rng.lognormal(np.log(4.0 * num_products) + 0.4 * engagement, 0.6), 0.0, 500.0), 2
    )

    tickets = np.minimum(30, rng.poisson(np.exp(-0.7 + 0.15 * num_products - 0.5 * satisfaction)))
    late = np.minimum(12, rng.poisson(np.exp(-1.2 - 1.0 * has_autopay + 0.6 * stress)))
    nps = np.clip(
        np.round(7.0 + 1.6 * satisfaction - 0.4 * tickets + rng.normal(0.0, 1.2, n)), 0, 10
    ).astype(np.int64)

    logit = (
        -0.1
        - 0.55 * np.log1p(tenure)
        + 1.1 * (contract == 1)
        - 0.5 * (contract == 24)
        + 0.3 * tickets
        + 0.4 * late
        - 0.22 * (nps - 7)
        + 0.012 * days_since_login
        - 0.015 * sessions
        - 0.4 * has_autopay
        - 0.2 * (num_products - 1)
        + 0.012 * (monthly - 70.0)
        - 0.02 * discount
        - 0.05 * data_usage / num_products
        - 0.5 * satisfaction
        - 0.3 * engagement
    )
    y = (rng.random(n) < _sigmoid(logit)).astype(np.int64)

    X = np.column_stack(
        [
            tenure,
            monthly,
            total,
            contract,
            num_products,
            has_autopay,
            tickets,
            late,
            sessions,
            avg_minutes,
            days_since_login,
            data_usage,
            discount,
            nps,
        ]
    ).astype(np.float64)
    # What the scorer sees: every value goes through float32 on the way in.
    return X.astype(np.float32).astype(np.float64), y


def generate_wide(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` rows of 256 standard-normal features and a noisy label.

    The label depends on a random linear direction, a few pairwise
    interactions and noise, so there is something for the MLP to learn.
    Values are rounded through float32.
    """
    X = rng.standard_normal((n, MLP_WIDTH)).astype(np.float32).astype(np.float64)
    w = rng.standard_normal(MLP_WIDTH) / np.sqrt(MLP_WIDTH)
    pairs = rng.integers(0, MLP_WIDTH, size=(16, 2))
    z = X @ w + 0.5 * np.sum(X[:, pairs[:, 0]] * X[:, pairs[:, 1]], axis=1) / 4.0
    z += rng.normal(0.0, 0.5, n)
    return X, (z > 0).astype(np.int64)


# --------------------------------------------------------------------------- #
# Export and verification
# --------------------------------------------------------------------------- #


def export_onnx(model, width: int, name: str, doc: str, version: str | None = None) -> bytes:
    """Convert a fitted sklearn classifier (or pipeline) to ONNX bytes.

    Input ``features`` float32 [None, width]; outputs ``label`` int64 [N] and
    ``probabilities`` float32 [N, 2] (zipmap disabled).
    """
    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    onx = convert_sklearn(
        model,
        name=name,
        initial_types=[("features", FloatTensorType([None, width]))],
        options={id(final): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        doc_string=doc,
    )
    onx.producer_name = "kafka-onnx-scorer/models/train.py"
    onx.producer_version = f"skl2onnx {skl2onnx.__version__}"
    version = version or VERSIONS[name]
    onx.model_version = int(version.split(".")[0])
    onnx.helper.set_model_props(onx, {"name": name, "version": version})
    onnx.checker.check_model(onx)
    out_names = [o.name for o in onx.graph.output]
    assert [i.name for i in onx.graph.input] == ["features"], onx.graph.input
    assert out_names == ["label", "probabilities"], out_names
    return onx.SerializeToString()


def ort_predict(model_bytes: bytes, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the exported graph with python onnxruntime; returns (label, probabilities)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    label, proba = sess.run(["label", "probabilities"], {"features": X.astype(np.float32)})
    return label, proba


def verify(name: str, model, model_bytes: bytes, X: np.ndarray) -> float:
    """Assert onnxruntime agrees with sklearn on ``X``; return the max |diff| of p(class 1)."""
    sk = model.predict_proba(X)[:, 1]
    label, proba = ort_predict(model_bytes, X)
    diff = float(np.max(np.abs(proba[:, 1].astype(np.float64) - sk)))
    if diff > TOLERANCE:
        raise SystemExit(f"{name}: onnxruntime differs from sklearn by {diff:.3g} > {TOLERANCE}")
    sums = np.abs(proba.astype(np.float64).sum(axis=1) - 1.0)
    if float(sums.max()) > TOLERANCE:
        raise SystemExit(f"{name}: probability rows do not sum to 1 ({sums.max():.3g})")
    away = np.abs(proba[:, 1] - THRESHOLD) > 1e-4
    if not np.array_equal(label[away], (proba[away, 1] >= THRESHOLD).astype(np.int64)):
        raise SystemExit(f"{name}: onnx label disagrees with probabilities >= {THRESHOLD}")
    return diff


def pick_fixture_rows(p: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` rows spread over the range of scores.

    Rows are taken at evenly spaced quantiles of ``p`` (so both labels and the
    tails appear), skipping any row within 1e-3 of the threshold so that the
    label check cannot flip on float rounding. Returned in ascending index order.
    """
    ok = np.flatnonzero(np.abs(p - THRESHOLD) > 1e-3)
    order = ok[np.argsort(p[ok], kind="stable")]
    at = np.round(np.linspace(0, len(order) - 1, count)).astype(np.int64)
    return np.sort(order[at])


def write_fixture(
    path: Path,
    name: str,
    features: list[str],
    model,
    model_bytes: bytes,
    X: np.ndarray,
    files: tuple[str, str] | None = None,
) -> None:
    """``files``: the (onnx, manifest) paths the fixture describes; default models/<name>.*."""
    label, proba = ort_predict(model_bytes, X)
    sk = model.predict_proba(X)[:, 1]
    onnx_file, manifest_file = files or (f"models/{name}.onnx", f"models/{name}.manifest.json")
    doc = {
        "model": name,
        "onnx": onnx_file,
        "manifest": manifest_file,
        "generatedBy": "models/train.py",
        "framework": FRAMEWORK,
        "tolerance": TOLERANCE,
        "threshold": THRESHOLD,
        "features": features,
        "rows": [[float(v) for v in row] for row in X.astype(np.float32)],
        "sklearnProbability": [float(v) for v in sk],
        "onnxruntimeProbability": [float(v) for v in proba[:, 1]],
        "onnxruntimeLabel": [int(v) for v in label],
    }
    _write_json(path, doc, compact_rows=True)


def manifest(
    *,
    name: str,
    description: str,
    features: list[str],
    classes: list[str],
    meaning: str,
    event_schema: str | None,
    rows: int,
    auc: float,
    version: str | None = None,
    training: dict | None = None,
) -> dict:
    """The manifest validated by the TypeScript model loader (exactly these keys).

    ``event_schema`` None leaves ``eventSchema`` out: the model reads the scorer's default
    reader schema. ``training`` adds estimator settings to the ``training`` record.
    """
    doc = {
        "name": name,
        "version": version or VERSIONS[name],
        "description": description,
        "framework": FRAMEWORK,
        "input": {"name": "features", "dtype": "float32", "width": len(features)},
        "features": features,
        "outputs": {
            "probabilities": {
                "name": "probabilities",
                "dtype": "float32",
                "shape": [-1, 2],
                "classes": classes,
            },
            "label": {"name": "label", "dtype": "int64"},
        },
        "score": {"output": "probabilities", "column": 1, "meaning": meaning},
        "threshold": THRESHOLD,
        "labels": {"below": classes[0], "atOrAbove": classes[1]},
        "eventSchema": event_schema,
        "training": {"rows": rows, "seed": SEED, "holdout_auc": round(float(auc), 4), **(training or {})},
    }
    if event_schema is None:
        del doc["eventSchema"]
    return doc


def _write_json(path: Path, doc: dict, compact_rows: bool = False) -> None:
    text = json.dumps(doc, indent=2)
    if compact_rows:
        # One input row per line keeps the fixtures readable and diffable.
        rows = ",\n".join("    " + json.dumps(r) for r in doc["rows"])
        text = text.replace(
            json.dumps(doc["rows"], indent=2).replace("\n", "\n  "), "[\n" + rows + "\n  ]"
        )
        assert json.loads(text) == doc
    path.write_text(text + "\n", encoding="utf-8")
    print(f"  wrote {path.relative_to(ROOT)}")


def wide_schema() -> dict:
    """schemas/wide-feature-event.avsc: the envelope of feature-event.avsc with 256 doubles."""
    base = json.loads((SCHEMAS / "feature-event.avsc").read_text(encoding="utf-8"))
    envelope = {f["name"]: f for f in base["fields"] if f["name"] != "features"}
    return {
        "type": "record",
        "name": "WideFeatureEvent",
        "namespace": "io.kafkaonnxscorer.v1",
        "doc": (
            "Wide benchmark feature event (reader schema of the mlp model). Same envelope as "
            "FeatureEvent with 256 anonymous double features. Generated by models/train.py: do not edit by hand."
        ),
        "fields": [
            envelope["event_id"],
            envelope["event_time"],
            {**envelope["entity_id"], "doc": "The entity the features describe; also the Kafka record key by convention."},
            {
                "name": "features",
                "doc": (
                    "Model inputs f000..f255, in input-column order. A null or missing value, NaN or "
                    "+/-Infinity makes the record invalid (dead-lettered with INVALID_FEATURE)."
                ),
                "type": {
                    "type": "record",
                    "name": "WideFeatures",
                    "fields": [
                        {
                            "name": f,
                            "type": "double",
                            "doc": f"Synthetic benchmark feature {i} (input column {i}), roughly standard normal.",
                        }
                        for i, f in enumerate(MLP_FEATURES)
                    ],
                },
            },
        ],
    }


def _write_avsc(path: Path, schema: dict) -> None:
    """Write an avsc in the repository's style: one line per leaf field."""
    lines = ["{"]
    lines.append(f'  "type": "record",')
    lines.append(f'  "name": {json.dumps(schema["name"])},')
    lines.append(f'  "namespace": {json.dumps(schema["namespace"])},')
    lines.append(f'  "doc": {json.dumps(schema["doc"])},')
    lines.append('  "fields": [')
    out = []
    for f in schema["fields"]:
        if f["name"] != "features":
            out.append("    " + json.dumps(f))
            continue
        inner = ",\n".join("          " + json.dumps(g) for g in f["type"]["fields"])
        out.append(
            "    {\n"
            f'      "name": "features",\n'
            f'      "doc": {json.dumps(f["doc"])},\n'
            '      "type": {\n'
            '        "type": "record",\n'
            f'        "name": {json.dumps(f["type"]["name"])},\n'
            '        "fields": [\n' + inner + "\n        ]\n      }\n    }"
        )
    lines.append(",\n".join(out))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == schema
    path.write_text(text, encoding="utf-8")
    print(f"  wrote {path.relative_to(ROOT)}")


# --------------------------------------------------------------------------- #
# Models
# --------------------------------------------------------------------------- #


def churn_manifest(version: str, auc: float, settings: dict, top_level: bool = False) -> dict:
    """A churn version's manifest; ``top_level``: the one of models/churn.onnx (MODEL_PATH)."""
    return manifest(
        name="churn",
        version=version,
        description=(
            "Customer churn classifier: sklearn Pipeline(StandardScaler, LogisticRegression) trained on "
            f"{CHURN_ROWS} synthetic customers (models/train.py)."
            + ("" if version == VERSIONS["churn"] else f" Version {version}: LogisticRegression({_kwargs(settings)}).")
        ),
        features=CHURN_FEATURES,
        classes=["stay", "churn"],
        meaning="probability that the customer churns within 90 days",
        # The top-level file keeps its package-root path (read that way since before repositories);
        # repository versions read the default reader schema and name none.
        event_schema="schemas/feature-event.avsc" if top_level else None,
        rows=CHURN_ROWS,
        auc=auc,
        training=None if version == VERSIONS["churn"] else {"estimator": settings},
    )


def _kwargs(settings: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items())


def build_churn() -> None:
    print("churn: generating", CHURN_ROWS, "customers")
    X, y = generate_churn(CHURN_ROWS, np.random.default_rng(SEED))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)
    print(f"  churn rate {y.mean():.3f}")
    for version, settings in CHURN_VERSIONS.items():
        model = Pipeline(
            [
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(max_iter=2000, random_state=SEED, **settings)),
            ]
        )
        model.fit(X_tr, y_tr)
        p_te = model.predict_proba(X_te)[:, 1]
        auc = roc_auc_score(y_te, p_te)
        print(f"  churn {version} ({_kwargs(settings)}): holdout AUC {auc:.4f}, mean score {p_te.mean():.3f}")
        data = export_onnx(
            model,
            len(CHURN_FEATURES),
            "churn",
            "Churn within 90 days: StandardScaler + LogisticRegression on 14 customer features.",
            version=version,
        )
        diff = verify(f"churn {version}", model, data, X_te)
        print(f"  onnxruntime vs sklearn on {len(X_te)} holdout rows: max |dp| = {diff:.3g}")
        folder = MODELS / "churn" / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.onnx").write_bytes(data)
        print(f"  wrote {(folder / 'model.onnx').relative_to(ROOT)} ({len(data)} bytes)")
        _write_json(folder / "manifest.json", churn_manifest(version, auc, settings))
        idx = pick_fixture_rows(p_te, 32)
        if version == VERSIONS["churn"]:
            # The reference model: also the single-file MODEL_PATH model, as before repositories.
            (MODELS / "churn.onnx").write_bytes(data)
            print(f"  wrote models/churn.onnx ({len(data)} bytes)")
            _write_json(MODELS / "churn.manifest.json", churn_manifest(version, auc, settings, top_level=True))
            write_fixture(FIXTURES / "churn-expected.json", "churn", CHURN_FEATURES, model, data, X_te[idx])
        else:
            rel = f"models/churn/{version}"
            write_fixture(
                FIXTURES / f"churn-{version}-expected.json",
                "churn",
                CHURN_FEATURES,
                model,
                data,
                X_te[idx],
                files=(f"{rel}/model.onnx", f"{rel}/manifest.json"),
            )


def build_mlp() -> None:
    print("mlp: generating", MLP_ROWS, "rows x", MLP_WIDTH)
    X, y = generate_wide(MLP_ROWS, np.random.default_rng(SEED))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)
    model = MLPClassifier(
        hidden_layer_sizes=MLP_HIDDEN,
        activation="relu",
        solver="adam",
        batch_size=128,
        learning_rate_init=1e-3,
        max_iter=MLP_EPOCHS,
        shuffle=True,
        random_state=SEED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # trained briefly on purpose
        model.fit(X_tr, y_tr)
    p_te = model.predict_proba(X_te)[:, 1]
    auc = roc_auc_score(y_te, p_te)
    print(f"  positive rate {y.mean():.3f}, holdout AUC {auc:.4f} after {model.n_iter_} epochs")

    data = export_onnx(
        model,
        MLP_WIDTH,
        "mlp",
        f"Benchmark-only MLP {MLP_ARCH} (relu, logistic output) on synthetic data.",
    )
    (MODELS / "mlp.onnx").write_bytes(data)
    print(f"  wrote models/mlp.onnx ({len(data)} bytes)")
    diff = verify("mlp", model, data, X_te)
    print(f"  onnxruntime vs sklearn on {len(X_te)} holdout rows: max |dp| = {diff:.3g}")

    _write_json(
        MODELS / "mlp.manifest.json",
        manifest(
            name="mlp",
            description=(
                f"Benchmark-only model: sklearn MLPClassifier {MLP_ARCH} (relu), briefly trained on "
                f"{MLP_ROWS} synthetic rows (models/train.py). Its scores mean nothing; it exists to load the scorer."
            ),
            features=MLP_FEATURES,
            classes=["negative", "positive"],
            meaning="probability of the positive class of the synthetic benchmark task",
            event_schema="schemas/wide-feature-event.avsc",
            rows=MLP_ROWS,
            auc=auc,
        ),
    )
    _write_avsc(SCHEMAS / "wide-feature-event.avsc", wide_schema())
    idx = pick_fixture_rows(p_te, 8)
    write_fixture(FIXTURES / "mlp-expected.json", "mlp", MLP_FEATURES, model, data, X_te[idx])


BUILDERS = {"churn": build_churn, "mlp": build_mlp}


def main() -> None:
    """``train.py [churn] [mlp]``: the named models only (default both; mlp takes ~1 min)."""
    wanted = sys.argv[1:] or list(BUILDERS)
    unknown = [w for w in wanted if w not in BUILDERS]
    if unknown:
        raise SystemExit(f"unknown model {unknown[0]!r}: expected any of {', '.join(BUILDERS)}")
    if sys.version_info[:2] != (3, 11):
        print(f"note: pins were chosen for Python 3.11, running {sys.version.split()[0]}")
    print(f"{FRAMEWORK}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        BUILDERS[name]()


if __name__ == "__main__":
    main()
