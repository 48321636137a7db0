"""Interval coverage: the share of true values inside closed intervals."""

from __future__ import annotations

import pytest

from fusion.uncertainty import interval_coverage


def test_coverage_counts_the_truth_inside_closed_intervals() -> None:
    assert interval_coverage([0.1, 0.2, 0.3], [0.2, 0.4, 0.5], [0.2, 0.5, 0.3]) == pytest.approx(
        2 / 3
    )
    with pytest.raises(ValueError, match="Shapes differ"):
        interval_coverage([0.1], [0.2, 0.3], [0.1])
