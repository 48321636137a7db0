"""Risk interval before (validation split only) and after (out of fold on train + validation).

Measures both interval methods on the same built store and the same fusion model, on its test
split, against the synthetic truth: coverage of the true risk, coverage of the estimated event
rate of similar-risk patients, mean width, the share of degenerate intervals (under 1 point
wide, e.g. 0-0% or 100-100%) and the share whose own fused risk lies outside them. The
"before" code is read from git (commit ``e8aee6e``, the last one with the validation-split
interval). With ``--no-genomics`` the fusion model is refitted without the genomics inputs
(train split, early stopping on validation, as ``riskfusion train`` fits it).

Usage (docs/models.md, "Risk interval")::

    RISKFUSION_HOME=/tmp/intv/demo200 riskfusion demo --no-serve --patients 200
    PYTHONPATH=. python docs/interval_before_after.py /tmp/intv/demo200 [--no-genomics]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from data.store import CohortStore, make_engine
from fusion.features import FeatureSet, build_feature_matrix, image_scores
from fusion.model import FusionClassifier
from fusion.training.serving_artifacts import _modality_columns
from fusion.uncertainty import calibrated_intervals, fit_interval_calibration, measure_interval

BEFORE = "e8aee6e"


def _old_modules(folder: Path) -> tuple[object, object]:
    """The validation-split interval modules of commit BEFORE, importable from ``folder``."""
    for name in ("interval_calibration", "uncertainty"):
        text = subprocess.run(
            ["git", "show", f"{BEFORE}:fusion/{name}.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        text = text.replace("from fusion.interval_calibration", "from old_interval_calibration")
        (folder / f"old_{name}.py").write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("old_uncertainty"), importlib.import_module(
        "old_interval_calibration"
    )


def _row(label: str, low: np.ndarray, high: np.ndarray, risk: np.ndarray, entry: dict) -> str:
    degenerate = float(np.mean(high - low < 0.01))
    outside = float(np.mean(~((low < risk) & (risk < high))))
    return (
        f"| {label} | {entry['coverage_true_risk']:.3f} | {entry['coverage_event_rate']:.3f} | "
        f"{entry['mean_width']:.3f} | {degenerate:.3f} | {outside:.3f} |"
    )


def main() -> None:
    """Print the before/after table of one built store."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--no-genomics", action="store_true")
    args = parser.parse_args()
    # The newest fusion model and imaging nets of the home: a build need not have finished its
    # later stages (stored SHAP, map trust, forecast) for this measurement.
    store = CohortStore(make_engine(f"sqlite:///{args.home / 'riskfusion.db'}"))
    imaging = max(store.list_models("imaging"), key=lambda record: record.version)
    model_file = max((args.home / "models").glob("fusion-*/fusion.txt"))
    frame = store.load_patient_frame()
    scores = image_scores(store.load_embeddings(imaging.version), imaging.params["logit_scaling"])
    frame = frame.join(scores, on="patient_id")
    features = FeatureSet.from_catalog(store.feature_catalog())
    if args.no_genomics:
        features = features.subset(tuple(m for m in set(features.modalities) if m != "genomics"))
    X = build_feature_matrix(frame, features)
    y = frame["label"].to_numpy()
    truth = frame["true_risk"].to_numpy(np.float64)
    masks = {s: (frame["split"] == s).to_numpy() for s in ("train", "val", "test")}
    model = FusionClassifier.load(model_file)
    if args.no_genomics:
        leaf = int(np.clip(masks["train"].sum() // 20, 5, 20))
        model = FusionClassifier(random_state=0, min_child_samples=leaf).fit(
            X[masks["train"]], y[masks["train"]], X_val=X[masks["val"]], y_val=y[masks["val"]]
        )
    columns = _modality_columns(store, model)
    X_test, t_test = X[masks["test"]], truth[masks["test"]]
    risk = model.predict_proba(X_test)[:, 1]
    rows = [()] * len(X_test)
    cal = masks["train"] | masks["val"]
    n_val, n_cal = int(masks["val"].sum()), int(cal.sum())
    print(f"{model_file}, no_genomics={args.no_genomics}: {len(X)} patients, test {len(X_test)}")
    print(
        "| interval (90%) | coverage of true risk | coverage of event rate | mean width | "
        "degenerate (<1 pt) | risk outside |"
    )
    with tempfile.TemporaryDirectory() as folder:
        old, _ = _old_modules(Path(folder))
        for with_truth in (True, False):
            calibration = old.fit_interval_calibration(  # type: ignore[attr-defined]
                model,
                X[masks["val"]],
                y[masks["val"]],
                truth[masks["val"]] if with_truth else None,
                modality_columns=columns,
            )
            low, high = old.calibrated_intervals(calibration, risk, rows)  # type: ignore[attr-defined]
            entry = old.measure_interval(calibration, model, X_test, t_test)["none"]  # type: ignore[attr-defined]
            print(
                _row(
                    f"before, {calibration.target}, val n={n_val}",
                    low,
                    high,
                    risk,
                    entry[calibration.target],
                )
            )
    for with_truth in (True, False):
        calibration = fit_interval_calibration(
            model, X[cal], y[cal], truth[cal] if with_truth else None, modality_columns=columns
        )
        low, high = calibrated_intervals(calibration, risk, rows)
        entry = measure_interval(calibration, model, X_test, t_test)["none"]
        print(
            _row(
                f"after, {calibration.target}, out-of-fold n={n_cal}",
                low,
                high,
                risk,
                entry[calibration.target],
            )
        )


if __name__ == "__main__":
    main()
