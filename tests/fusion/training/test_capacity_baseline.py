"""Capacity chosen inside train+validation, the logistic baseline, the comparison, serving it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from scipy import special

from data.errors import ArtifactIntegrityError
from data.store import CohortStore, make_engine
from fusion.evaluation.bootstrap import paired_draws
from fusion.evaluation.metrics import auroc_with_ci
from fusion.explain import make_explainer, shap_values
from fusion.logistic import LogisticBaseline
from fusion.model import FusionClassifier
from fusion.service.facade import RiskService
from fusion.service.loaded_models import LoadedModels
from fusion.settings import Settings
from fusion.training.baseline_activation import activate_baseline
from fusion.training.capacity import choose_capacity
from fusion.training.logistic_baseline import (
    COMPARISON_METRIC,
    LOGISTIC_KIND,
    compare_with_baseline,
    comparison_of,
)
from fusion.training.versions import check_version

DEMO_LEAVES, DEMO_LEAF = 15, 20  # FusionClassifier defaults, tuned on the 2,000-patient demo


def strong_linear_cohort(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` patients: one tabular input (``cognitive``) carries the outcome linearly."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.normal(70, 8, n),
            "cognitive": rng.normal(0, 1, n),
            "brain_volume": rng.normal(1000, 80, n),
            **{f"noise_{k}": rng.normal(size=n) for k in range(8)},
        }
    )
    X.loc[rng.uniform(size=n) < 0.1, "brain_volume"] = np.nan  # missing for some
    y = (rng.uniform(size=n) < special.expit(-0.5 + 2.5 * X["cognitive"])).astype(np.int64)
    return X, y.to_numpy()


def test_capacity_search_picks_a_smaller_model_on_200_patients() -> None:
    X, y = strong_linear_cohort()
    choice = choose_capacity(X, y, random_state=0)
    assert choice.n_patients == 200
    assert choice.n_folds == 5
    assert len(choice.grid) == 18  # every point fits the folds at this size
    assert choice.num_leaves < DEMO_LEAVES
    # The chosen point is the best mean held-out log-loss of the grid.
    assert choice.cv_logloss == min(point["cv_logloss"] for point in choice.grid)
    record = json.loads(json.dumps(choice.to_params()))
    assert record["num_leaves"] == choice.num_leaves
    assert len(record["grid"]) == 18
    model = FusionClassifier(**choice.model_params()).fit(X, y)
    assert model.booster_.params["num_leaves"] == choice.num_leaves


def test_capacity_search_refuses_a_class_too_small() -> None:
    X, _ = strong_linear_cohort(20)
    with pytest.raises(ValueError, match="at least 2 patients of each class"):
        choose_capacity(X, np.r_[np.ones(1), np.zeros(19)].astype(int))


def test_logistic_baseline_round_trips_as_json_without_pickle(tmp_path: Path) -> None:
    X, y = strong_linear_cohort()
    model = LogisticBaseline(random_state=0).fit(X[:140], y[:140])
    assert model.C_ in model.Cs
    assert np.argmax(np.abs(model.coef_)) == list(X.columns).index("cognitive")
    path = tmp_path / "logistic.json"
    sha = model.save(path)
    document = json.loads(path.read_text())  # plain JSON: nothing to unpickle
    assert document["feature_names"] == list(X.columns)
    loaded = LogisticBaseline.load(path, expected_sha256=sha)
    np.testing.assert_array_equal(loaded.predict_proba(X[140:]), model.predict_proba(X[140:]))
    path.write_text(path.read_text().replace('"intercept": ', '"intercept": 1'))
    with pytest.raises(ArtifactIntegrityError):
        LogisticBaseline.load(path, expected_sha256=sha)
    with pytest.raises(ValueError, match="columns differ"):
        model.predict_proba(X[140:].iloc[:, ::-1])


def test_linear_shap_is_exact_and_additive() -> None:
    X, y = strong_linear_cohort()
    model = LogisticBaseline().fit(X, y)
    result = shap_values(model, X[:20], explainer=make_explainer(model))
    assert result.values.shape == (20, X.shape[1])
    np.testing.assert_allclose(result.margin(), model.decision_function(X[:20]), atol=1e-9)
    np.testing.assert_allclose(result.values, model.standardize(X[:20]) * model.coef_, atol=1e-9)
    assert result.base_value == pytest.approx(model.intercept_)


def test_paired_bootstrap_is_paired_and_matches_the_engine() -> None:
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=300) < 0.3).astype(int)
    a = np.clip(0.3 + 0.2 * y + 0.2 * rng.normal(size=300), 0, 1)
    points, samples = paired_draws(y, np.column_stack([a, a]), n_resamples=300, random_state=0)
    point, draws = points["auroc"], samples["auroc"]
    np.testing.assert_array_equal(draws[:, 0], draws[:, 1])
    single = auroc_with_ci(y, a, n_resamples=300, random_state=0)
    assert point[0] == pytest.approx(single.auroc)
    assert np.nanpercentile(draws[:, 0], 2.5) == pytest.approx(single.low, abs=0.02)


def test_the_comparison_says_when_the_baseline_wins() -> None:
    X, y = strong_linear_cohort(400, seed=2)
    logistic = LogisticBaseline().fit(X[:200], y[:200])
    strong = logistic.predict_proba(X[200:])[:, 1]
    weak = special.expit(X["age"][200:].to_numpy() / 10 - 7)  # ignores the predictor
    result = compare_with_baseline(y[200:], weak, strong, n_resamples=500)
    assert result.baseline_better
    assert result.high < 0
    assert "better than the fused model beyond noise" in result.describe()
    assert "riskfusion activate --baseline logistic" in result.describe()
    assert comparison_of({COMPARISON_METRIC: result.to_metrics()}) == result
    even = compare_with_baseline(y[200:], strong, strong, n_resamples=200)
    assert not even.baseline_better
    assert "do not differ beyond noise" in even.describe()


def test_training_fits_registers_and_compares_the_baseline(tiny_demo, tiny_service) -> None:
    settings, summary = tiny_demo
    version = summary.fusion_version
    records = {r.version: r for r in tiny_service.store.list_models()}
    part = records[f"{version}-logistic"]
    assert part.kind == LOGISTIC_KIND
    assert part.parent_version == version
    fusion = records[version]
    assert fusion.params["capacity"]["method"] == "cv"
    assert fusion.params["capacity"]["num_leaves"] == fusion.params["num_leaves"]
    assert fusion.params["capacity"]["grid"]
    comparison = comparison_of(fusion.metrics)
    assert comparison is not None
    assert comparison.baseline_auroc == pytest.approx(part.metrics["test_auroc"])
    assert fusion.metrics["baselines"]["logistic"] == pytest.approx(part.metrics["test_auroc"])
    frame = tiny_service.test_predictions()
    assert frame["risk_logistic"].notna().all()
    model = LogisticBaseline.load(
        settings.artifacts_dir / part.artifact_path, expected_sha256=part.sha256
    )
    assert list(model.feature_names) == list(tiny_service.features.names)
    assert check_version(records, settings.artifacts_dir, version).complete


@pytest.fixture
def served_home(tiny_demo, tmp_path: Path) -> Settings:
    """A copy of the tiny demo whose logistic baseline is activated."""
    source, _ = tiny_demo
    target = tmp_path / "home"
    shutil.copytree(source.artifacts_dir, target, ignore=shutil.ignore_patterns("*.db-shm"))
    return Settings.from_env({"RISKFUSION_HOME": str(target)})


def test_activating_the_baseline_serves_its_risk_and_shap(
    served_home: Settings, tiny_demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fusion.cli import main

    _, summary = tiny_demo
    monkeypatch.setenv("RISKFUSION_HOME", str(served_home.artifacts_dir))
    monkeypatch.delenv("RISKFUSION_DATABASE_URL", raising=False)
    assert main(["activate"]) == 2  # neither a version nor --baseline
    assert main(["activate", "--baseline", "logistic"]) == 0
    store = CohortStore(make_engine(served_home.database_url))
    served = store.active_model("fusion").version
    assert served != summary.fusion_version
    assert store.active_model("fusion").params["served_from"] == {
        "fusion_version": summary.fusion_version,
        "baseline": "logistic",
    }
    records = {r.version: r for r in store.list_models()}
    assert check_version(records, served_home.artifacts_dir, served).complete
    again = activate_baseline(
        store, served_home.artifacts_dir, fusion_version=summary.fusion_version
    )
    assert again == served  # the served version is reused, not built twice
    with pytest.raises(ValueError, match="already serves"):
        activate_baseline(store, served_home.artifacts_dir)
    service = RiskService(store, served_home.artifacts_dir)
    assert isinstance(service.model, LogisticBaseline)
    pid = service.test_predictions()["patient_id"].iloc[0]
    case = service.load_patient(pid)
    risk = service.predict(case).risk
    assert risk == pytest.approx(float(service.model.predict_proba(case.X)[0, 1]))
    stored, live = service.explain(case), service.explain_live(case)
    assert stored.source == "store"
    assert live.source == "live"
    assert stored.margin == pytest.approx(special.logit(risk), abs=1e-6)
    np.testing.assert_allclose(
        stored.contributions.sort_values("feature")["shap"].to_numpy(),
        live.contributions.sort_values("feature")["shap"].to_numpy(),
        atol=1e-5,
    )
    frame = service.test_predictions()
    assert {"risk", "risk_lightgbm", "risk_ehr"} <= set(frame.columns)
    assert "risk_logistic" not in frame.columns  # it is the served model now
    assert service.interval_calibration is None  # built for the LightGBM model only
    store.engine.dispose()


def test_performance_page_offers_the_baseline_to_an_admin(served_home: Settings) -> None:
    from streamlit.testing.v1 import AppTest

    store = CohortStore(make_engine(served_home.database_url))
    service = RiskService(store, served_home.artifacts_dir)
    win = compare_with_baseline(
        np.array([0, 1] * 30), np.tile([0.6, 0.4], 30), np.tile([0.2, 0.8], 30), n_resamples=100
    )
    record = service.models.fusion_record
    metrics = {**record.metrics, COMPARISON_METRIC: win.to_metrics()}
    service.models = replace(service.models, fusion_record=replace(record, metrics=metrics))
    assert isinstance(service.models, LoadedModels)
    app = str(Path(__file__).resolve().parents[3] / "app.py")
    with patch("dashboard.resources.get_risk_service", return_value=service):
        at = AppTest.from_file(app, default_timeout=120).run()
        at.switch_page("dashboard/pages/performance.py").run()
        assert not at.exception, at.exception
        assert any("activate --baseline logistic" in w.value for w in at.warning)
        at.button(key="performance.serve_baseline").click().run()
    assert store.active_model("fusion").params["model_type"] == "logistic"
    store.engine.dispose()


def test_bench_section_reads_the_comparison_and_the_interval_part(tiny_service) -> None:
    from fusion.training.bench_small import model_comparison

    figures = model_comparison(tiny_service.store)
    comparison = comparison_of(tiny_service.models.fusion_record.metrics)
    assert comparison is not None
    assert figures["fused_auroc"] == pytest.approx(comparison.fused_auroc, abs=1e-4)
    assert figures["logistic_auroc"] == pytest.approx(comparison.baseline_auroc, abs=1e-4)
    assert figures["difference_ci"] == [round(comparison.low, 4), round(comparison.high, 4)]
    interval = tiny_service.store.artifact_of(tiny_service.version, "interval")
    assert interval is not None
    assert set(figures["interval"]) == set(interval.metrics)
    assert "grid" not in figures["capacity"]


def test_the_explorer_explains_a_served_baseline_with_linear_shap(served_home: Settings) -> None:
    from streamlit.testing.v1 import AppTest

    store = CohortStore(make_engine(served_home.database_url))
    activate_baseline(store, served_home.artifacts_dir)
    service = RiskService(store, served_home.artifacts_dir)
    app = str(Path(__file__).resolve().parents[3] / "app.py")
    with patch("dashboard.resources.get_risk_service", return_value=service):
        at = AppTest.from_file(app, default_timeout=120).run()
        select = at.selectbox(key="explorer.patient")
        select.set_value(select.options[0].split(" ")[0]).run()
        assert not at.exception, at.exception
        captions = [c.value for c in at.caption]
        assert any("linear SHAP values of the logistic regression" in c for c in captions)
        assert not any("TreeSHAP values of the fused model" in c for c in captions)
    store.engine.dispose()
