"""The reference registry receiver as a real process, for tests that push to "the registry".

Why this exists: registry-sync's delivery guarantees (retries, at-most-once effect, reconciliation)
are only worth the name against a receiver that is a separate process with its own storage, that
can be killed, restarted, slowed, made to fail, drop connections, or refuse them. This module starts
deploy/registry-receiver on free ports and steers it through its admin port.

Usage::

    # in a test folder's conftest.py (an import in the test module itself trips ruff's F811):
    from tests.receiver import receiver  # noqa: F401

    def test_retries_until_acknowledged(receiver: Receiver) -> None:
        receiver.set_faults("fail", status=503, probability=0.5)
        ...                                   # push to receiver.url
        assert receiver.stats()["applied_per_key"] == {"0551010:1": 1}

    with start_receiver(tmp_path) as receiver:  # without pytest's fixture
        receiver.kill()                         # SIGKILL: nothing flushed beyond what was committed
        receiver.restart()                      # same SQLite file, same ports

Notes: the helpers are synchronous (short HTTP calls on the admin port); from an async test that
runs the sender in the same event loop, wrap `restart` in ``asyncio.to_thread`` since it waits for
readiness. The process runs in its own session, so teardown kills its whole process group; its
stderr goes to ``<tmp_path>/registry-receiver/registry-receiver.log`` and is quoted when it fails
to start. Fault modes live in the receiver's memory: a restarted receiver is back to ``ok``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".venv" / "bin" / "registry-receiver"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0
START_ATTEMPTS = 3


def free_port() -> int:
    """Return a TCP port nobody listens on right now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ReceiverNotReadyError(RuntimeError):
    """The receiver process died or did not answer in time."""


class Receiver:
    """A running receiver process: its URLs, its storage file, and the admin API as methods."""

    def __init__(self, workdir: Path, *, port: int, admin_port: int) -> None:
        self.workdir = workdir
        self.db_path = workdir / "receiver.sqlite3"
        self.log_path = workdir / "registry-receiver.log"
        self.port = port
        self.admin_port = admin_port
        self.process: subprocess.Popen[bytes] | None = None
        self._admin = httpx.Client(base_url=self.admin_url, timeout=HTTP_TIMEOUT_S)
        self._data = httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT_S)

    @property
    def url(self) -> str:
        """Return the data port's base URL (what registry-sync pushes to)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """Return the admin port's base URL."""
        return f"http://127.0.0.1:{self.admin_port}"

    # -- process ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process (same file, same ports) and wait until both ports answer."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the receiver is already running")
        command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "registry_receiver"]
        command += [
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--admin-port", str(self.admin_port),
            "--db", str(self.db_path),
        ]  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: teardown kills the whole tree
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ReceiverNotReadyError(
                    f"the receiver exited while starting:\n{self.log_tail()}"
                )
            try:
                health = self._admin.get("/_admin/healthz")
                if health.status_code == 200 and health.json()["data_port"] == "open":
                    self._data.get("/v1/bodies", params={"limit": 1})
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise ReceiverNotReadyError(f"the receiver never became ready:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the process (and its group) and reap it: a crash, no graceful shutdown."""
        self._signal(signal.SIGKILL)
        self._reap(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Stop the process with SIGTERM, or SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        """Stop the process if it runs, then start it again on the same file and ports."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the process and release the HTTP clients (teardown)."""
        try:
            self.stop()
        finally:
            self._signal(signal.SIGKILL)  # anything left in the group
            self._admin.close()
            self._data.close()

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None or self.process.returncode is not None:
            return  # never started, or already reaped: its pid may belong to someone else now
        with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
            os.killpg(self.process.pid, sig)

    def _reap(self, timeout_s: float) -> None:
        if self.process is not None:
            self.process.wait(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the process's log (for assertion messages)."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])

    def __enter__(self) -> Receiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- admin API -------------------------------------------------------------------------------

    def set_faults(
        self, mode: str, delay_ms: int = 0, status: int = 503, probability: float = 1.0
    ) -> dict[str, Any]:
        """Put a fault mode in force: ok | slow | fail | drop_before | drop_after | down."""
        body = {"mode": mode, "delay_ms": delay_ms, "status": status, "probability": probability}
        return self._ok(self._admin.put("/_admin/faults", json=body))

    def faults(self) -> dict[str, Any]:
        """Return the fault mode in force."""
        return self._ok(self._admin.get("/_admin/faults"))

    def stats(self) -> dict[str, Any]:
        """Return ``{"pushes_received", "pushes_applied", "applied_per_key": {key: n}}``."""
        return self._ok(self._admin.get("/_admin/stats"))

    def tamper(self, code: str, rows: list[dict[str, Any]]) -> None:
        """Replace the rows held for `code` behind the sender's back (version and hash kept)."""
        self._ok(self._admin.put(f"/_admin/bodies/{code}/rows", json={"rows": rows}))

    def reset(self) -> None:
        """Forget every body, key and counter; fault mode back to ok."""
        self._ok(self._admin.post("/_admin/reset"))

    def applied_versions_in_order(self) -> dict[str, list[int]]:
        """Return, per body, the versions applied, in the order applied (from its own storage)."""
        connection = sqlite3.connect(self.db_path, timeout=10.0)
        try:
            rows = connection.execute(
                "SELECT body_code, registry_version FROM applied_keys ORDER BY rowid"
            ).fetchall()
        finally:
            connection.close()
        applied: dict[str, list[int]] = defaultdict(list)
        for code, version in rows:
            applied[code].append(version)
        return applied

    # -- contract reads (through the data port, so faults apply) --------------------------------

    def body(self, code: str) -> dict[str, Any] | None:
        """Return the table held for `code` (`GET /v1/bodies/{code}`), or None on 404."""
        response = self._data.get(f"/v1/bodies/{code}")
        if response.status_code == 404:
            return None
        return self._ok(response)

    def listing(self, *, page_size: int = 5000) -> list[dict[str, Any]]:
        """Return every listed body (`GET /v1/bodies`, all pages), hashes recomputed from rows."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": page_size}
            if after is not None:
                params["after"] = after
            page = self._ok(self._data.get("/v1/bodies", params=params))
            items += page["items"]
            after = page["next_after"]
            if after is None:
                return items

    @staticmethod
    def _ok(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise AssertionError(
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code}: {response.text}"
            )
        body: dict[str, Any] = response.json()
        return body


def start_receiver(tmp_path: Path) -> Receiver:
    """Start a receiver storing under ``tmp_path/registry-receiver`` on free ports; return it.

    Use it as a context manager (or call `close`) so the process never outlives the test.
    """
    workdir = tmp_path / "registry-receiver"
    for attempt in range(1, START_ATTEMPTS + 1):
        started = Receiver(workdir, port=free_port(), admin_port=free_port())
        try:
            started.start()
        except ReceiverNotReadyError:
            started.close()
            if attempt == START_ATTEMPTS:
                raise
            continue  # another process took a port between the probe and the bind: new ports
        return started
    raise AssertionError("unreachable")  # the loop returns or raises


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """Yield a running receiver for one test; stop it (and its process group) afterwards."""
    with start_receiver(tmp_path) as started:
        yield started
