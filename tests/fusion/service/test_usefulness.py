"""The clinical-usefulness view of the active model: same numbers as the pure functions, and the
audit's suppression for a researcher."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.admin.access import Identity
from fusion.evaluation.groups import group_labels
from fusion.evaluation.net_benefit import decision_curve
from fusion.evaluation.slices import SLICE_COLUMNS
from fusion.reports.usefulness_figures import usefulness_figures, usefulness_tables
from fusion.service.facade import RiskService
from fusion.service.usefulness import ALL_PATIENTS, clinical_usefulness
from fusion.service.worst_slices import RESEARCHER_HIDDEN, worst_slices

RESEARCHER = Identity(user="r@h.org", role="researcher", source="oidc")
ADMIN = Identity(user="a@h.org", role="admin", source="oidc")


def test_overall_view_equals_the_decision_curve_of_the_test_split(
    tiny_service: RiskService,
) -> None:
    view = clinical_usefulness(tiny_service, identity=ADMIN, min_cell=0, n_resamples=20)
    frame = tiny_service.test_predictions()
    expected = decision_curve(frame["label"], frame["risk"], n_resamples=0)
    np.testing.assert_allclose(view.decision["net_benefit"], expected["net_benefit"])
    assert set(view.decision["group"]) == {ALL_PATIENTS}
    assert view.cuts is None
    assert view.calibration.index.tolist() == [ALL_PATIENTS]
    assert view.calibration.loc[ALL_PATIENTS, "n"] == len(frame)


def test_researcher_counts_come_from_allowed_cuts_and_small_groups_are_left_out(
    tiny_service: RiskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny demo has 24 test patients: a floor of 4 leaves groups to show and to hide.
    monkeypatch.setattr(tiny_service, "min_cell_floor", 4)
    view = clinical_usefulness(tiny_service, ("sex",), identity=RESEARCHER, n_resamples=0)
    assert view.cuts is not None
    assert set(view.decision["applied_cut"]) <= {*view.cuts, np.inf}
    frame = tiny_service.test_predictions()
    labels = group_labels(frame, ["sex"])
    report = tiny_service.audit(("sex",), identity=RESEARCHER)
    for group in set(view.decision["group"]):
        member = (labels == group).to_numpy()
        events = int(frame.loc[member, "label"].sum())
        assert min(events, member.sum() - events) >= view.min_cell
        assert not report.by_group.loc[group, "suppressed"]
    shown = set(view.decision["group"]) | set(view.calibration.index)
    hidden = set(report.by_group.index[report.by_group["suppressed"].to_numpy(dtype=bool)])
    assert not shown & hidden
    assert view.n_hidden >= len(hidden)


def test_exports_carry_both_figures_and_numeric_tables(tiny_service: RiskService) -> None:
    view = clinical_usefulness(tiny_service, identity=ADMIN, min_cell=0, n_resamples=10)
    figures = usefulness_figures(view)
    assert len(figures) == 2
    tables = usefulness_tables(view)
    header = tables["decision-curve"].splitlines()[0]
    assert header.startswith("group,threshold,applied_cut,net_benefit")
    first = tables["calibration"].splitlines()[1].split(",")
    assert first[0] == ALL_PATIENTS
    assert float(first[1]) == pytest.approx(len(tiny_service.test_predictions()))


def test_worst_slices_search_validation_and_test_on_the_test_split(
    tiny_service: RiskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny_service, "min_cell_floor", 2)
    view = worst_slices(tiny_service, identity=ADMIN)
    assert view.n_confirmation == len(tiny_service.test_predictions())
    assert {"sex", "site"} <= set(view.columns)
    assert list(view.table.columns) == list(SLICE_COLUMNS)
    assert (view.table["n"] >= 2).all()
    assert "validation patients" in view.note()


def test_a_researcher_sees_no_slice_size_or_rates(
    tiny_service: RiskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny_service, "min_cell_floor", 2)
    researcher = worst_slices(tiny_service, identity=RESEARCHER)
    admin = worst_slices(tiny_service, identity=ADMIN)
    assert researcher.table["slice"].tolist() == admin.table["slice"].tolist()
    for column in RESEARCHER_HIDDEN:
        assert researcher.table[column].isna().all()
