"""Dashboard settings: the shared :class:`fusion.settings.Settings`, read once from the environment.

The command line needs the same settings and may not import the dashboard, so the class lives in
``fusion.settings``; this module is the dashboard's entry to it.
"""

from __future__ import annotations

from fusion.settings import Settings

__all__ = ["Settings"]
