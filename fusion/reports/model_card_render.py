"""The model card as a readable HTML page and a PDF (ReportLab), from its JSON form.

Both renderings read only the card dict of :func:`fusion.reports.model_card.build_model_card`,
so the JSON, the HTML and the PDF cannot disagree. The HTML escapes every string (cohort
sources, group labels and registry values come from imported files) and fits a 1280 px screen
(no table wider than the page). The PDF uses ReportLab's built-in Helvetica, so no font has to
be installed; text is reduced to the characters that font has. Must not import streamlit.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["card_sections", "model_card_html", "model_card_pdf"]


def _fmt(value: Any, decimals: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def _ci(estimate: Mapping[str, Any] | None, decimals: int = 3) -> str:
    """``'0.798 (0.747-0.847)'``; ``n/a`` when unknown or hidden."""
    if not estimate or estimate.get("value") is None:
        return "n/a"
    text = _fmt(estimate["value"], decimals)
    if estimate.get("low") is not None and estimate.get("high") is not None:
        text += f" ({_fmt(estimate['low'], decimals)}-{_fmt(estimate['high'], decimals)})"
    return text


Rows = list[tuple[str, ...]]


def card_sections(card: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The card as titled sections: each a table (header row first) or a list of sentences."""
    model, data, performance = card["model"], card["data"], card["performance"]
    sections: list[tuple[str, Any]] = [
        (
            "Model",
            [
                ("Field", "Value"),
                ("Version", model["version"]),
                ("Imaging model", model["imaging_version"]),
                ("Trained (UTC)", model["created_at"]),
                ("Decision threshold", f"{_fmt(model['threshold'])} ({model['threshold_rule']})"),
                ("Inputs", _fmt(model.get("n_inputs"))),
                ("Parts", ", ".join(model["parts"]) or "none"),
            ],
        ),
        (
            "Intended use",
            [
                card["intended_use"]["purpose"],
                "Users: " + "; ".join(card["intended_use"]["users"]) + ".",
                "Not for: " + "; ".join(card["intended_use"]["not_for"]) + ".",
            ],
        ),
        (
            "Data lineage",
            [
                ("Field", "Value"),
                ("Sources", ", ".join(data["sources"]) or "unknown"),
                ("Synthetic", _fmt(data.get("synthetic"))),
                ("Patients", _fmt(data["n_patients"])),
                ("Scans", _fmt(data.get("n_scans"))),
                ("Splits", ", ".join(f"{k} {v}" for k, v in data["splits"].items())),
                ("Import batches", ", ".join(data.get("import_batches", [])) or "none"),
                ("Training data SHA-256", data["fingerprint"] or "not recorded"),
            ],
        ),
        (
            "Modalities",
            [("Modality", "Inputs")]
            + [(m["label"], _fmt(m.get("n_inputs"))) for m in card["modalities"]],
        ),
        (
            "Performance (test split, 95% bootstrap CIs)",
            [
                ("Measure", "Value"),
                ("Patients", _fmt(performance["n_test"])),
                ("Patients with the outcome", _fmt(performance.get("n_test_events"))),
                ("AUROC", _ci(performance["auroc"])),
                ("Brier score", _fmt(performance["brier"])),
                ("ECE", _fmt(performance.get("ece"))),
            ]
            + [
                (f"AUROC of baseline {name}", _fmt(value))
                for name, value in performance["baselines"].items()
            ],
        ),
        (
            "Calibration (ideal: intercept 0, slope 1, O/E 1, ICI 0)",
            [("Statistic", "Value (95% CI)")]
            + [
                (label, _ci(card["calibration"].get(name)))
                for name, label in (
                    ("intercept", "Calibration intercept"),
                    ("slope", "Calibration slope"),
                    ("observed_expected", "Observed/expected"),
                    ("ici", "ICI"),
                )
            ],
        ),
        (
            "Net benefit (per patient; treat-none is 0)",
            [("Threshold", "Model (95% band)", "Treat all", "Above both")]
            + [
                (
                    f"{row['threshold']:.0%}",
                    _ci(row["model"], 4),
                    _fmt(row["treat_all"], 4),
                    _fmt(row["beats_defaults"]),
                )
                for row in card["net_benefit"]
            ],
        ),
        (
            "Fairness (flags: difference from the reference whose CI excludes 0)",
            _fairness_rows(card),
        ),
        ("Trust in the image maps", _map_rows(card.get("map_trust"))),
        ("Limitations", list(card["limitations"]) or ["None derived from the numbers above."]),
        (
            "Disclosure",
            [
                f"Groups and cells under {card['disclosure']['min_cell']} patients are "
                f"suppressed; prepared for the {card['disclosure']['role']} role. Created "
                f"{card['created']}; schema {card['schema']}."
            ],
        ),
    ]
    return sections


def _fairness_rows(card: Mapping[str, Any]) -> Rows:
    rows: Rows = [("Attributes", "Groups shown", "Suppressed", "Flags")]
    for entry in card["fairness"]:
        names = " x ".join(entry["attributes"])
        if entry["status"] != "audited":
            rows.append((names, "-", "-", f"not audited: {entry['reason']}"))
            continue
        flags = "; ".join(
            f"{flag['group']} {flag['metric']} "
            + _ci({"value": flag["difference"], "low": flag["low"], "high": flag["high"]})
            for flag in entry["flags"]
        )
        rows.append(
            (names, str(entry["groups_shown"]), str(entry["groups_suppressed"]), flags or "none")
        )
    return rows


def _map_rows(trust: Mapping[str, Any] | None) -> Rows | list[str]:
    if not trust or not isinstance(trust.get("summary"), Mapping):
        return ["Not measured for this version (no lesion masks, or built before it was)."]
    summary: Mapping[str, Mapping[str, Any]] = trust["summary"]
    measures = sorted({key for row in summary.values() for key in row})
    rows: Rows = [("Map", *measures)]
    for name, row in summary.items():
        rows.append((str(name), *(_fmt(row.get(key)) for key in measures)))
    return rows


def _is_table(body: Rows | list[str]) -> bool:
    return bool(body) and isinstance(body[0], tuple)


def model_card_html(card: Mapping[str, Any], figures: Mapping[str, Any] | None = None) -> str:
    """One self-contained HTML page of the card (plotly.js inlined once with the first figure)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Model card {html.escape(card['model']['version'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;font-size:13px;table-layout:auto;max-width:100%}"
        "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;"
        "overflow-wrap:anywhere}</style>",
        "</head><body>",
        f"<h1>Model card: {html.escape(card['model']['version'])}</h1>",
    ]
    for title, body in card_sections(card):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if _is_table(body):
            header, *rows = body
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header))
            for row in rows:
                parts.append(
                    "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                )
            parts.append("</table>")
        else:
            parts.extend(f"<p>{html.escape(str(line))}</p>" for line in body)
    for index, (title, figure) in enumerate((figures or {}).items()):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0))
    parts.append("</body></html>")
    return "\n".join(parts)


def _latin1(text: str) -> str:
    """Text Helvetica can draw: common symbols spelled out, the rest replaced by '?'."""
    for symbol, plain in (("≥", ">="), ("≤", "<="), ("–", "-"), ("—", "-"), ("×", "x")):
        text = text.replace(symbol, plain)
    return text.encode("latin-1", "replace").decode("latin-1")


def _paragraphs(lines: Iterable[str], style: Any) -> list[Any]:
    from reportlab.platypus import Paragraph

    return [Paragraph(html.escape(_latin1(str(line))), style) for line in lines]


def model_card_pdf(card: Mapping[str, Any]) -> bytes:
    """The card as an A4 PDF: the same sections as the HTML, tables wrapped to the page width."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=8, leading=10)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=1.8 * cm,
        rightMargin=1.8 * cm,
        topMargin=1.8 * cm,
        bottomMargin=1.8 * cm,
        title=_latin1(f"Model card {card['model']['version']}"),
        author="riskfusion",
    )
    story: list[Any] = [
        Paragraph(html.escape(_latin1(f"Model card: {card['model']['version']}")), styles["Title"])
    ]
    for title, body in card_sections(card):
        story.append(Paragraph(html.escape(_latin1(title)), styles["Heading2"]))
        if _is_table(body):
            rows: Sequence[tuple[str, ...]] = body  # type: ignore[assignment]
            data = [_paragraphs(row, cell) for row in rows]
            table = Table(data, colWidths=[doc.width / len(rows[0])] * len(rows[0]), repeatRows=1)
            table.setStyle(
                TableStyle(
                    [
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ]
                )
            )
            story.append(table)
        else:
            story.extend(_paragraphs(body, styles["BodyText"]))  # type: ignore[arg-type]
        story.append(Spacer(1, 0.3 * cm))
    doc.build(story)
    return buffer.getvalue()
