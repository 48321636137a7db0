"""The command line and the settings load without the heavy libraries (a correctness check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = (
    "demo",
    "serve",
    "export",
    "audit",
    "explain",
    "forecast",
    "import",
    "train",
    "activate",
    "versions",
    "score",
    "audit-trail",
    "db-roles",
    "bench",
)


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_cli_settings_and_access_import_no_heavy_library() -> None:
    probe = (
        "import fusion.cli, fusion.settings, fusion.admin.access; import sys; "
        "print(sorted(m for m in ('torch','monai','lightgbm','shap') if m in sys.modules))"
    )
    result = _python("-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_exits_0_and_lists_every_subcommand() -> None:
    result = _python("-m", "fusion.cli", "--help")
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert name in result.stdout
