"""The researcher's SHAP view: bins of at least min_cell patients, never one patient's values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion.aggregates import VALUE_BINS, binned_shap


def _beeswarm(n: int, *, missing: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rank = np.r_[np.arange(1, n + 1) / n, np.full(missing, np.nan)]
    frames = [
        pd.DataFrame(
            {
                "label": label,
                "modality": "ehr",
                "shap": rng.normal(size=len(rank)),
                "value_rank": rank,
            }
        )
        for label in ("BMI", "Age")
    ]
    return pd.concat(frames, ignore_index=True)


def test_bins_hold_every_patient_and_the_mean_of_their_shap() -> None:
    beeswarm = _beeswarm(100, missing=12)
    table = binned_shap(beeswarm, min_cell=11)
    assert table["label"].unique().tolist() == ["BMI", "Age"]  # the input's order
    assert table["bin"].tolist()[:6] == [*VALUE_BINS, "missing"]
    for label, rows in beeswarm.groupby("label"):
        shown = table.loc[table["label"] == label]
        assert shown["n"].sum() == len(rows)
        lowest = rows.loc[rows["value_rank"] <= 0.2, "shap"].mean()
        assert shown["mean_shap"].iloc[0] == pytest.approx(lowest)


def test_a_bin_under_the_floor_shows_neither_mean_nor_count() -> None:
    table = binned_shap(_beeswarm(100, missing=4), min_cell=11)
    missing = table.loc[table["bin"] == "missing"]
    assert missing["suppressed"].all()
    assert missing["n"].isna().all()
    assert missing["mean_shap"].isna().all()
    assert not table.loc[table["bin"] != "missing", "suppressed"].any()


def test_no_row_describes_fewer_than_min_cell_patients() -> None:
    table = binned_shap(_beeswarm(40), min_cell=11)  # 8 per fifth: all hidden
    assert table["suppressed"].all()
    assert table["mean_shap"].isna().all()
    assert binned_shap(pd.DataFrame(), min_cell=11).empty
