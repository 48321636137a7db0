"""The performance page's figures, built in fusion, and the bench's measure of their size."""

from __future__ import annotations

from fusion.reports.performance_figures import performance_figures
from fusion.training.bench import performance_page_payload


def test_performance_figures_are_the_pages_charts_in_order(tiny_service) -> None:
    report, shap = tiny_service.performance(), tiny_service.test_shap()
    admin = performance_figures(report, shap, per_patient=True)
    assert list(admin) == ["roc", "pr", "calibration", "importance", "beeswarm"]
    assert admin["beeswarm"].layout.title.text.startswith("SHAP beeswarm")
    researcher = performance_figures(report, shap, per_patient=False)
    assert researcher["beeswarm"].layout.title.text.startswith("Mean SHAP by")


def test_bench_sums_the_json_the_performance_page_sends(tiny_service) -> None:
    payload = performance_page_payload(tiny_service)
    figures = performance_figures(
        tiny_service.performance(), tiny_service.test_shap(), per_patient=True
    )
    sizes = {name: len(fig.to_json()) for name, fig in figures.items()}
    assert payload["figure_json_bytes_by_figure"] == sizes
    assert payload["figure_json_bytes"] == sum(sizes.values())
    assert payload["test_patients"] == tiny_service.count_patients("test")
