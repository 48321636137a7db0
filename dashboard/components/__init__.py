"""Reusable page sections: ``render_<thing>(..., key=...) -> value``."""

from __future__ import annotations

__all__: list[str] = []
