"""Dashboard layer: the only package that imports streamlit.

Pages (``dashboard/pages/``, never imported) only orchestrate: read widgets, call
``fusion.service.facade.RiskService``, render ``dashboard.figures``. Caching lives in
``dashboard.resources``, session-state keys in ``dashboard.state``.
"""

from __future__ import annotations

__all__: list[str] = []
