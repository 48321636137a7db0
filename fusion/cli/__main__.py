"""``python -m fusion.cli``: the ``riskfusion`` console script."""

from __future__ import annotations

from fusion.cli import main

raise SystemExit(main())
