"""What the ECE gives away about hidden calibration bins, and the shown-bins ECE that does not.

With every bin in it, the ECE times n minus the shown bins' terms is ``sum |risk sum - events|``
of the hidden bins; with their risk ranges ([0, 0.1) and [0.9, 1)), the hidden bins' total size
and events, it narrows a hidden bin's size (here 9 to 8-14 of 0-23; closer to the floor
with sharper bins). The report's ECE is taken over the
shown bins only, a number those bins give anyway.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion.evaluation.metrics import expected_calibration_error
from fusion.evaluation.performance import evaluate_performance

FLOOR = 11


def _cohort() -> pd.DataFrame:
    """Bins 1-8: 100 patients each, calibrated; bin 0: 9 patients (no event), bin 9: 14."""
    risks, labels = [np.full(9, 0.05)], [np.zeros(9)]
    for k in range(1, 9):
        p = (k + 0.5) / 10
        risks.append(np.full(100, p))
        labels.append(np.arange(100) < round(100 * p))
    risks.append(np.full(14, 0.95))
    labels.append(np.arange(14) < 12)
    return pd.DataFrame({"risk": np.concatenate(risks), "label": np.concatenate(labels)}).astype(
        {"label": int}
    )


def _feasible_sizes(n_hidden: int, events: int, gap: float | None) -> list[int]:
    """Sizes of the low bin [0, 0.1) that fit; the other hidden bin is [0.9, 1)."""
    sizes = []
    for low in range(n_hidden + 1):
        high = n_hidden - low
        for low_events in range(min(low, events) + 1):
            high_events = events - low_events
            if high_events > high:
                continue
            if gap is None:
                sizes.append(low)
                break
            # |S - e| over S in [n * a, n * b): nearest and farthest
            near = max(0.0, low_events - 0.1 * low) + max(0.0, 0.9 * high - high_events)
            far = max(low_events, abs(0.1 * low - low_events)) + max(
                abs(high - high_events), abs(0.9 * high - high_events)
            )
            if near - 1e-9 <= gap <= far + 1e-9:
                sizes.append(low)
                break
    return sizes


def test_the_full_ece_pins_a_hidden_bin_and_the_shown_bins_ece_does_not() -> None:
    frame = _cohort()
    report = evaluate_performance(
        frame, model_version="v", threshold=0.5, n_resamples=0, min_cell=FLOOR
    )
    table = report.calibration.set_index("low")
    assert table.loc[0.0, "suppressed"]  # 9 patients
    assert table.loc[0.9, "suppressed"]  # 2 non-events
    assert table["suppressed"].sum() == 2
    shown = table.loc[~table["suppressed"]]
    n, events = len(frame), int(frame["label"].sum())
    n_hidden = n - int(shown["n"].sum())
    hidden_events = events - round((shown["n"] * shown["observed"]).sum())
    shown_terms = float((shown["n"] * (shown["observed"] - shown["mean_risk"]).abs()).sum())

    full = expected_calibration_error(frame["label"], frame["risk"], n_bins=10)
    pinned = _feasible_sizes(n_hidden, hidden_events, full * n - shown_terms)
    assert 9 in pinned
    assert (min(pinned), max(pinned)) == (8, 14)  # 9 narrowed to 8-14 of 0-23

    # The report's ECE is the shown bins' own: it adds nothing, so any split still fits.
    assert np.isclose(report.ece, shown_terms / shown["n"].sum())
    assert not np.isclose(report.ece, full)
    free = _feasible_sizes(n_hidden, hidden_events, None)
    assert (min(free), max(free)) == (0, n_hidden)
