"""AppTests of the Model pages: performance (threshold, ablation) and bias audit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fusion.admin.access import Identity
from fusion.display import AUDIT_COLUMN_LABELS, format_ci, readable_table
from fusion.evaluation.flags import AuditOptions
from fusion.evaluation.performance import ABLATION_LABELS
from fusion.evaluation.suppression import SUPPRESSED_TILE

ADMIN = Identity(user="test-admin", role="admin", source="local")
TILE = SUPPRESSED_TILE  # a suppressed metric tile

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"dashboard/pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_performance_page_shows_curves_ablation_and_version(patched_service) -> None:
    at = _page("performance")
    assert at.title[0].value == "Model performance"
    version = patched_service.model_info().version
    assert any(version in caption.value for caption in at.caption)
    charts = _charts(at)
    report = patched_service.performance()
    hidden = int(report.calibration["suppressed"].sum())  # 24 test patients in 10 risk bins
    assert [c["layout"]["title"]["text"] for c in charts] == [
        "ROC curves (test split)",
        "Precision-recall (test split)",
        "Calibration (test split)"
        + (f"<br><sup>{hidden} small bin(s) suppressed</sup>" if hidden else ""),
        "Global importance per modality<br><sup>mean |SHAP|, test split</sup>",
        "SHAP beeswarm of the top inputs (test split)",
    ]
    shap_summary = patched_service.test_shap()
    assert charts[3]["data"][0]["x"] == pytest.approx(shap_summary.modalities.tolist())
    roc_names = [trace["name"] for trace in charts[0]["data"]]
    # 24 test patients: most models have too few events for a curve without small steps.
    assert roc_names == ["chance", *dict.fromkeys(report.curves["model"])]
    assert set(report.curves["model"]) <= set(ABLATION_LABELS.values())
    assert _metric(at, "Brier score") == f"{report.brier:.3f}"
    ablation = next(f.value for f in at.dataframe if "AUROC (95% CI)" in f.value.columns)
    assert not any("_" in str(column) for column in ablation.columns)
    fusion = report.ablation.loc["Fusion (all modalities)"]
    row = ablation.loc[ablation["Model"] == "Fusion (all modalities)"].iloc[0]
    assert row["AUROC (95% CI)"] == format_ci(
        fusion["auroc"], fusion["auroc_low"], fusion["auroc_high"]
    )
    # 24 test patients: the confusion matrix has small cells, hidden with their complements.
    confusion = next(
        frame.value for frame in at.dataframe if "at/above threshold" in frame.value.columns
    )
    assert confusion.loc["total", "total"] == str(report.n)
    hidden = report.confusion.isna().to_numpy()
    assert hidden.any()
    assert (confusion.to_numpy()[hidden] == "suppressed (n < 11)").all()
    assert any("cell(s) not shown" in caption.value for caption in at.caption)


def test_threshold_slider_updates_the_metrics(patched_service) -> None:
    at = _page("performance")
    at.slider(key="performance.threshold").set_value(0.0).run()
    assert not at.exception
    # Everyone flagged: no event or non-event below the threshold, a 0 cell, hidden.
    assert _metric(at, "Sensitivity") == TILE
    assert _metric(at, "False positive rate") == TILE
    for threshold in (1.0, 0.5):
        at.slider(key="performance.threshold").set_value(threshold).run()
        expected = patched_service.performance(threshold=threshold).ablation.iloc[-2]
        for label, column in (("Sensitivity", "tpr"), ("False positive rate", "fpr")):
            shown = _metric(at, label)
            if np.isnan(expected[column]):
                assert shown == TILE
            else:
                assert shown == f"{expected[column]:.1%}"


def test_fairness_page_audits_sex_by_default(patched_service) -> None:
    at = _page("fairness")
    assert at.title[0].value == "Bias audit"
    at.number_input(key="fairness.min_cell").set_value(2).run()
    assert not at.exception
    report = patched_service.audit(["sex"], min_cell=2, identity=ADMIN)
    # Flags and signed differences come first: the tile, the group states, the compact table.
    summary = report.summary.loc["demographic_parity_difference"]
    shown = _metric(at, "Largest selection-rate difference")
    if np.isnan(summary["difference"]):
        assert shown == "not compared"
    else:
        assert shown == f"{summary['difference']:+.3f}"
    flagged = _metric(at, "Flagged differences")
    assert flagged == (
        "not compared"
        if report.nothing_compared
        else f"{report.n_flagged} of {report.n_comparisons}"
    )
    if report.nothing_compared is None:
        states = at.dataframe[0].value
        assert list(states["Group"]) == report.group_states()["group"].tolist()
        compact = at.dataframe[1].value
        assert len(compact.columns) <= 13  # a compact table, not 90 raw columns
        assert "Difference (95% CI)" in compact.columns
    figure = _charts(at)[0]
    assert figure["data"][0]["y"] == report.by_group.index[~report.by_group["suppressed"]].tolist()
    charts = _charts(at)
    roc, calibration = patched_service.group_curves(["sex"], min_cell=2, identity=ADMIN)
    assert [t["name"] for t in charts[1]["data"]][1:] == list(dict.fromkeys(roc["group"]))
    assert charts[1]["layout"]["title"]["text"] == "ROC by group (test split)"
    curves = [t["name"] for t in charts[2]["data"]][1:]
    assert curves == list(dict.fromkeys(calibration.loc[~calibration["suppressed"], "group"]))
    reliance = patched_service.modality_reliance(["sex"], min_cell=2, identity=ADMIN)
    [reliance_chart] = [
        c for c in _charts(at) if c["layout"]["title"]["text"].startswith("Reliance on each")
    ]
    bars = reliance_chart["data"]
    assert [bar["name"] for bar in bars] == ["Demographics", "EHR", "Genomics", "Imaging"]
    assert bars[3]["y"] == pytest.approx(reliance.loc[~reliance["suppressed"], "imaging"].tolist())
    assert [b.proto.label for b in at.get("download_button")] == [
        "Download metrics (CSV)",
        "Download differences (CSV)",
        "Download report (HTML)",
    ]


def test_fairness_page_offers_both_adjustments(patched_service) -> None:
    at = _page("fairness")
    at.number_input(key="fairness.min_cell").set_value(2).run()
    assert at.radio(key="fairness.method").value == "holm"  # the stated default
    at.radio(key="fairness.method").set_value("bh").run()
    assert not at.exception
    report = patched_service.audit(
        ["sex"], min_cell=2, identity=ADMIN, options=AuditOptions(method="bh")
    )
    assert any("Benjamini-Hochberg" in caption.value for caption in at.caption) or (
        report.nothing_compared is not None
    )


def _every_metric(at: AppTest) -> pd.DataFrame:
    """The bias audit's table of every metric (in the expander, after the chosen metric's)."""
    return next(t.value for t in at.dataframe if "Selection rate (95% CI)" in t.value.columns)


def _shown(report) -> pd.DataFrame:
    """What the page's table of every metric must show for ``report`` (markers included)."""
    table = report.table().drop(columns=list(report.attributes))
    return readable_table(table, labels=AUDIT_COLUMN_LABELS)


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_intersection_and_threshold_move_every_metric(patched_service, threshold) -> None:
    at = _page("fairness")
    # An admin turns suppression off (0): at threshold 0 or 1 every cell of a 2x2 is 0.
    at.number_input(key="fairness.min_cell").set_value(0).run()
    at.multiselect(key="fairness.attributes").set_value(["sex", "site"]).run()
    at.slider(key="fairness.threshold").set_value(threshold).run()
    assert not at.exception
    table = _every_metric(at)
    assert set(table["Group"]) == set(
        patched_service.audit(["sex", "site"], min_cell=0, identity=ADMIN).by_group.index
    )
    rates = table.loc[table["Patients"].astype(int) > 0, "Selection rate (95% CI)"]
    assert (rates.str.split(" ").str[0].astype(float) == (1.0 if threshold == 0.0 else 0.0)).all()


def test_suppression_is_visible_and_reference_is_selectable(patched_service) -> None:
    at = _page("fairness")
    at.number_input(key="fairness.min_cell").set_value(3).run()
    at.multiselect(key="fairness.attributes").set_value(["ethnicity", "site"]).run()
    assert not at.exception
    report = patched_service.audit(["ethnicity", "site"], min_cell=3, identity=ADMIN)
    assert report.by_group["suppressed"].any()  # the tiny cohort has small intersections
    table = _every_metric(at)
    hidden = table.loc[table["Suppressed"] == "yes", "Group"]
    assert set(hidden) == set(report.by_group.index[report.by_group["suppressed"]])
    assert any("not shown" in caption.value for caption in at.caption)
    options = at.selectbox(key="fairness.reference").options
    assert not set(options) & set(hidden)  # a suppressed group cannot be the reference
    target = options[-1]
    at.selectbox(key="fairness.reference").set_value(target).run()
    assert not at.exception
    assert f"reference {target}" in _charts(at)[0]["layout"]["title"]["text"]


def test_every_group_suppressed_is_explained(patched_service) -> None:
    at = _page("fairness")
    at.number_input(key="fairness.min_cell").set_value(1000).run()
    assert not at.exception
    assert "fewer than 1000 patients" in at.error[0].value


def test_no_attribute_asks_for_one(patched_service) -> None:
    at = _page("fairness")
    at.multiselect(key="fairness.attributes").set_value([]).run()
    assert not at.exception
    assert any("Choose at least one" in info.value for info in at.info)


def test_switching_attribute_after_choosing_a_reference(patched_service) -> None:
    at = _page("fairness")
    at.number_input(key="fairness.min_cell").set_value(1).run()
    at.selectbox(key="fairness.reference").set_value("M").run()
    at.multiselect(key="fairness.attributes").set_value(["site"]).run()
    assert not at.exception
    assert at.selectbox(key="fairness.reference").options[0] == "(largest group)"


def test_fairness_page_states_the_demo_bias_and_hides_small_bins(patched_service) -> None:
    at = _page("fairness")
    assert patched_service.build_params()["bias"] is True  # the tiny demo is built biased
    assert any("deliberately injected bias" in info.value for info in at.info)
    at.number_input(key="fairness.min_cell").set_value(4).run()
    assert not at.exception
    _, calibration = patched_service.group_curves(["sex"], min_cell=4, identity=ADMIN)
    hidden = int(calibration["suppressed"].sum())
    assert hidden > 0  # 24 test patients in 5 risk bins per sex: some bins are small
    drawn = _charts(at)[2]
    assert drawn["layout"]["title"]["text"].endswith(f"{hidden} small bin(s) suppressed</sup>")
    counts = [n for trace in drawn["data"][1:] for n in trace.get("customdata", [])]
    assert all(n >= 4 for n in counts)  # no plotted bin is a small cell
    assert any(f"{hidden} calibration bin(s) not shown" in c.value for c in at.caption)


def _as_researcher(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.selectbox(key="signin.local_role").set_value("researcher").run()
    at.switch_page(f"dashboard/pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


RESEARCHER = Identity(user="rex@h.org", role="researcher", source="oidc")


def test_researcher_cannot_lower_the_floor_on_the_bias_page(patched_service, monkeypatch) -> None:
    # The tiny split has 24 patients: configure a floor of 5 so that some groups show.
    monkeypatch.setattr(patched_service, "min_cell_floor", 5)
    at = _as_researcher("fairness")
    control = at.number_input(key="fairness.min_cell")
    assert control.min == 5
    assert control.value == 5
    before = len(patched_service.audit_trail(limit=10_000, action="lower_suppression"))
    for attributes in (["sex"], ["ethnicity", "site"]):
        at.multiselect(key="fairness.attributes").set_value(attributes).run()
        at.number_input(key="fairness.min_cell").set_value(1).run()
        assert not at.exception
        # The control keeps the floor (the service refuses any caller below it, see
        # tests/fusion/test_disclosure.py), and the page shows what the floor allows.
        assert at.number_input(key="fairness.min_cell").value == 5
        if at.dataframe:
            table = _every_metric(at)
            assert all(int(n) >= 5 for n in table["Patients"] if n.isdigit())
            expected = patched_service.audit(
                attributes,
                threshold=at.slider(key="fairness.threshold").value,
                min_cell=5,
                identity=RESEARCHER,
            )
            pd.testing.assert_frame_equal(table, _shown(expected), check_dtype=False)
        else:  # every group is under the floor (or protects one that is)
            assert any("fewer than 5 patients" in e.value for e in at.error)
    assert len(patched_service.audit_trail(limit=10_000, action="lower_suppression")) == before
    # Raising is allowed; every shown group has n >= the floor, hidden rates carry the marker.
    at.multiselect(key="fairness.attributes").set_value(["sex"]).run()
    at.number_input(key="fairness.min_cell").set_value(6).run()
    assert not at.exception
    table = _every_metric(at)
    report = patched_service.audit(
        ["sex"],
        threshold=at.slider(key="fairness.threshold").value,
        min_cell=6,
        identity=RESEARCHER,
    )
    counts = [int(n) for n in table["Patients"] if n.isdigit()]
    assert counts
    assert all(n >= 6 for n in counts)
    pd.testing.assert_frame_equal(table, _shown(report), check_dtype=False)


def test_admin_lowering_the_floor_is_audited(patched_service) -> None:
    at = _page("fairness")
    before = patched_service.audit_trail(limit=10_000, action="lower_suppression")
    at.number_input(key="fairness.min_cell").set_value(3).run()
    assert not at.exception
    trail = patched_service.audit_trail(limit=10_000, action="lower_suppression")
    assert len(trail) > len(before)
    assert trail.iloc[0]["role"] == "admin"


def test_researcher_performance_page_shows_aggregates_only(patched_service) -> None:
    at = _as_researcher("performance")
    charts = _charts(at)
    titles = [c["layout"]["title"]["text"] for c in charts]
    assert not any(title.startswith("SHAP beeswarm") for title in titles)
    [aggregate] = [c for c in charts if c["layout"]["title"]["text"].startswith("Mean SHAP by")]
    bins = patched_service.test_shap().aggregates_only().bins
    # One dot per shown value bin, never one per patient.
    points = sum(len(trace["x"]) for trace in aggregate["data"])
    assert points == int((~bins["suppressed"]).sum())
    assert points < patched_service.count_patients("test")
    report = patched_service.performance(threshold=at.slider(key="performance.threshold").value)
    fusion = report.ablation.loc["Fusion (all modalities)"]
    for label, column in (("Sensitivity", "tpr"), ("False positive rate", "fpr")):
        expected = TILE if np.isnan(fusion[column]) else f"{fusion[column]:.1%}"
        assert _metric(at, label) == expected


@pytest.mark.parametrize("page", ["performance", "fairness"])
def test_researcher_threshold_snaps_to_an_allowed_cut_point(patched_service, page) -> None:
    at = _as_researcher(page)
    at.slider(key=f"{page}.threshold").set_value(0.93).run()
    assert not at.exception
    info = patched_service.model_info()
    # 24 test patients: no cut point besides the model's keeps the floor between thresholds.
    note = next(c.value for c in at.caption if "Researchers choose among" in c.value)
    assert f"snapped to {info.threshold:.2f}" in note
