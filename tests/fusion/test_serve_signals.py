"""``riskfusion serve`` stopped by a signal takes its Streamlit child (and the port) with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data.store import CohortStore, ModelRecord, make_engine

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _registered_home(home: Path) -> Path:
    """A store with an active fusion version: all ``serve`` checks before it starts Streamlit
    (the server's health endpoint answers without loading the model)."""
    home.mkdir()
    store = CohortStore(make_engine(f"sqlite:///{home / 'riskfusion.db'}"))
    store.create_schema()
    store.register_model(
        ModelRecord(
            version="fusion-1",
            kind="fusion",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            artifact_path="models/fusion-1.txt",
            sha256="0" * 64,
            metrics={},
            params={"build": {"n_patients": 1}},
        )
    )
    store.engine.dispose()
    return home


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
# SIGTERM is the service-manager stop that used to orphan the child; SIGINT (Ctrl+C) guards
# against a regression (subprocess.call killed the child on KeyboardInterrupt).
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_server_leaves_no_child_on_the_port(tmp_path: Path, stop: int) -> None:
    home = _registered_home(tmp_path / "home")
    port = _free_port()
    env = {**os.environ, "RISKFUSION_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("RISKFUSION_DATABASE_URL", None)
    log = (tmp_path / "serve.log").open("w")
    parent = subprocess.Popen(
        [sys.executable, "-m", "fusion.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=2
                ) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert parent.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in 90 s"
            time.sleep(0.3)
        children = _children(parent.pid)
        assert children, "serve runs Streamlit as a child process"
        parent.send_signal(stop)
        status = parent.wait(timeout=30)  # 10 s grace, then the child is killed
        deadline = time.monotonic() + 5
        while (_listening(port) or any(map(_alive, children))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _listening(port), "the port is still served after the parent stopped"
        assert not any(map(_alive, children)), "the Streamlit child outlived the parent"
        assert status in (0, 128 + stop)  # the child's status, as the parent passes it on
    finally:
        for pid in [parent.pid, *children]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=10)
        log.close()


def test_a_child_that_ignores_the_stop_is_killed_after_the_grace_period(monkeypatch) -> None:
    import threading

    from fusion.cli import serving

    monkeypatch.setattr(serving, "STOP_GRACE_S", 1.0)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    timer = threading.Timer(1.5, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    start = time.monotonic()
    status = serving.run_child([sys.executable, "-c", stubborn])
    timer.join()
    assert status == 128 + signal.SIGKILL
    assert time.monotonic() - start < 15
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
