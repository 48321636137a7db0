"""``riskfusion report``: the model card of the active version as JSON, HTML or PDF."""

from __future__ import annotations

import argparse
import getpass
import json
import logging

from fusion.cli.audit_entries import record_action
from fusion.settings import Settings

__all__ = ["REPORT_FORMATS", "model_card"]

logger = logging.getLogger(__name__)

REPORT_FORMATS = (".json", ".html", ".pdf")
"""File endings ``riskfusion report --out`` accepts."""


def model_card(settings: Settings, args: argparse.Namespace) -> int:
    """Write the model card of the active model (``--out`` card.json, card.html or card.pdf)."""
    from fusion.admin.access import Identity
    from fusion.reports.model_card import build_model_card
    from fusion.reports.model_card_render import model_card_html, model_card_pdf
    from fusion.reports.usefulness_figures import usefulness_figures
    from fusion.service.facade import RiskService
    from fusion.service.usefulness import clinical_usefulness

    suffix = args.out.suffix.lower()
    if suffix not in REPORT_FORMATS:
        raise ValueError(
            f"--out {args.out} must end in .json (model card), .html or .pdf (readable report)."
        )
    service = RiskService.from_settings(settings)
    # As the role asked for: a researcher's card shows what the researcher's pages show.
    operator = Identity(user=f"cli:{getpass.getuser()}", role=args.role, source="local")
    card = build_model_card(service, identity=operator, n_resamples=args.resamples)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        args.out.write_text(json.dumps(card, indent=2, allow_nan=False), encoding="utf-8")
    elif suffix == ".html":
        view = clinical_usefulness(service, identity=operator, n_resamples=args.resamples)
        args.out.write_text(model_card_html(card, usefulness_figures(view)), encoding="utf-8")
    else:
        args.out.write_bytes(model_card_pdf(card))
    record_action(
        settings,
        "export",
        model_version=card["model"]["version"],
        detail={"command": "report", "format": suffix.lstrip("."), "role": args.role},
    )
    logger.info(
        "wrote the model card of %s (%d limitation(s)) to %s",
        card["model"]["version"],
        len(card["limitations"]),
        args.out,
    )
    return 0
