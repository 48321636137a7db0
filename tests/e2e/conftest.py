from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = ROOT / "test-output" / "e2e"
# Elements whose text overflows their box (Streamlit cuts metric labels and values with "…")
# and tables wider than the window.
CUT_OFF = """() => {
  const found = [];
  for (const el of document.querySelectorAll(
      '[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *, '
      + '[data-testid="stMetricValue"], [data-testid="stMetricValue"] *')) {
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) found.push(el.textContent);
  }
  for (const el of document.querySelectorAll('[data-testid="stDataFrame"]')) {
    const box = el.getBoundingClientRect();
    if (box.right > window.innerWidth + 1) found.push('table past the page: ' + box.right);
  }
  return found;
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(home: Path, log_name: str) -> Iterator[str]:
    """``streamlit run app.py`` on a free local port against the store in ``home``."""
    port = _free_port()
    env = {
        **os.environ,
        "RISKFUSION_HOME": str(home),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    env.pop("RISKFUSION_DATABASE_URL", None)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = (OUTPUT / log_name).open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start; see {OUTPUT / log_name}")
        time.sleep(0.3)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def app_url(tiny_demo) -> Iterator[str]:
    settings, _ = tiny_demo
    with serve(settings.artifacts_dir, "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing; `make test` installs Debian chromium (.ci/ensure-services)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
