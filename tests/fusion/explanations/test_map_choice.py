"""The default image map is the one the stored trust metrics rank best."""

from __future__ import annotations

import pandas as pd
import pytest

from fusion.explanations.map_trust import MAP_NAMES, MapTrustReport, map_trust_sentence, rank_maps


def _report(rows: dict[str, tuple[float, float, float]]) -> MapTrustReport:
    summary = pd.DataFrame.from_dict(
        rows, orient="index", columns=["pointing_game", "energy_inside", "mean_risk_drop"]
    )
    return MapTrustReport(20, summary, pd.DataFrame(), 1e-12, 100)


DEMO_LIKE = {  # as measured on the demo: Grad-CAM scores as random, occlusion best
    "gradcam": (0.0, 0.05, 0.002),
    "gradcampp": (0.05, 0.06, 0.003),
    "occlusion": (0.6, 0.35, 0.031),
    "random": (0.05, 0.05, 0.004),
    "centre": (0.0, 0.04, float("nan")),
}


@pytest.mark.parametrize(
    ("rows", "best"),
    [
        (DEMO_LIKE, "occlusion"),
        ({**DEMO_LIKE, "gradcam": (0.7, 0.4, 0.04)}, "gradcam"),
        # Equal pointing game: faithfulness (mean risk drop) decides.
        ({**DEMO_LIKE, "gradcampp": (0.6, 0.1, 0.05)}, "gradcampp"),
        # A map without a measurement never wins.
        ({k: v for k, v in DEMO_LIKE.items() if k != "occlusion"}, "gradcampp"),
    ],
)
def test_default_map_is_the_best_ranked_by_the_trust_metrics(rows, best) -> None:
    ranked = rank_maps(_report(rows))
    assert ranked[0] == best
    assert sorted(ranked) == sorted(MAP_NAMES)


def test_without_trust_metrics_the_order_is_unchanged() -> None:
    assert rank_maps(None) == MAP_NAMES


def test_trust_sentence_gives_the_figures_next_to_random() -> None:
    report = _report(DEMO_LIKE)
    best = map_trust_sentence(report, "occlusion")
    assert "20 lesion-positive test scans" in best
    assert "60% of them (a random map: 5%)" in best
    assert "3.1 points" in best
    assert "no better than a random map" not in best
    assert "no better than a random map" in map_trust_sentence(report, "gradcam")
    assert "rebuild the demo" in map_trust_sentence(None, "gradcam")


def test_stored_demo_trust_picks_its_best_map(tiny_service) -> None:
    trust = tiny_service.map_trust()
    assert trust is not None
    best = rank_maps(trust)[0]
    maps = trust.summary.loc[list(MAP_NAMES)]
    assert maps.loc[best, "pointing_game"] == maps["pointing_game"].max()
