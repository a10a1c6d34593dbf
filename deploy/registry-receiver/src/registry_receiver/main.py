"""Composition root of the receiver: two HTTP servers (data and admin) in one process and one loop.

Why this exists: the ``down`` fault must make the data port refuse TCP connections while the admin
port still answers, so each port is its own uvicorn server whose listening socket this module opens
and closes. Nothing happens at import time; `cli` is the ``registry-receiver`` console script.

Usage::

    registry-receiver --port 8090 --admin-port 8091 --db .local/registry-receiver/receiver.sqlite3
    python -m registry_receiver          # the same

Notes: the sockets are bound here with SO_REUSEADDR, so a restarted process (or a data port reopened
after ``down``) gets its port back at once; port 0 picks a free port and keeps it across reopening.
SIGTERM and SIGINT stop both servers; uvicorn's own signal capture is turned off because two servers
in one loop would each install (and restore) handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Generator, Sequence

import uvicorn
from fastapi import FastAPI

from registry_receiver import admin, api
from registry_receiver.faults import FaultBoard, FaultInjector
from registry_receiver.problems import install_problem_handlers
from registry_receiver.settings import Settings
from registry_receiver.store import Store

log = logging.getLogger("registry_receiver")
STARTUP_TIMEOUT_S = 10.0


def create_data_app(store: Store) -> FastAPI:
    """Return the contract's app (no faults: `FaultInjector` wraps it).

    It serves the contract's paths only: no /docs or /openapi.json, since the hand-written
    document (services/registry-sync/contract/registry-v1.openapi.yaml) is the contract.
    """
    app = FastAPI(
        title="Registry receiver (contract v1)",
        description="Reference receiver of the national registry of digital infrastructure.",
        version="1.0.0",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    install_problem_handlers(app)
    app.include_router(api.router)
    return app


def create_admin_app(store: Store, board: FaultBoard, data_port: admin.DataPort) -> FastAPI:
    """Return the admin app (faults, stats, tampering, reset, health)."""
    app = FastAPI(title="Registry receiver: admin", version="1.0.0")
    app.state.store = store
    app.state.board = board
    app.state.data_port = data_port
    install_problem_handlers(app)
    app.include_router(admin.router)
    return app


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to this module."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to (host, port) with SO_REUSEADDR, not yet listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it uvicorn's two writes per response (head, body) wait ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    """One uvicorn server on one port, which can be opened and closed repeatedly."""

    def __init__(self, app: object, host: str, port: int, name: str) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        """Return whether the port accepts connections."""
        return self._server is not None

    @property
    def url(self) -> str:
        """Return the base URL of the port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def open(self) -> None:
        """Bind the port and serve until `close`; return once it accepts connections."""
        async with self._lock:
            if self._server is not None:
                return
            sock = bind(self.host, self.port)
            self.port = sock.getsockname()[1]
            config = uvicorn.Config(
                self.app,  # type: ignore[arg-type]  # an ASGI app; uvicorn's type is narrower
                http="h11",
                ws="none",
                lifespan="off",
                log_config=None,
                timeout_graceful_shutdown=1,
            )
            server = _Server(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            async with asyncio.timeout(STARTUP_TIMEOUT_S):
                while not server.started:
                    if task.done():
                        await task
                        raise RuntimeError(f"the {self.name} server stopped while starting")
                    await asyncio.sleep(0.01)
            self._server, self._task = server, task
            log.info("%s port open at %s", self.name, self.url)

    async def close(self) -> None:
        """Stop accepting connections (they are refused) and finish the open ones."""
        async with self._lock:
            if self._server is None or self._task is None:
                return
            self._server.should_exit = True
            await self._task
            self._server, self._task = None, None
            log.info("%s port closed", self.name)


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve the data and admin ports until SIGTERM/SIGINT (or `stop` is set)."""
    stop = stop if stop is not None else asyncio.Event()
    store = Store.open(settings.db_path)
    board = FaultBoard()
    data = Listener(
        FaultInjector(create_data_app(store), board=board, on_push=store.count_received),
        settings.host,
        settings.port,
        "data",
    )
    admin_port = Listener(
        create_admin_app(store, board, data), settings.host, settings.admin_port, "admin"
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await data.open()
        await admin_port.open()
        log.info(
            "registry-receiver ready data=%s admin=%s db=%s",
            data.url,
            admin_port.url,
            settings.db_path,
        )
        await stop.wait()
    finally:
        await asyncio.gather(admin_port.close(), data.close())
        store.close()
        log.info("registry-receiver stopped")


def configure_logging() -> None:
    """Log plain lines to stderr (the process entrypoint's job, never a library's)."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cli(argv: Sequence[str] | None = None) -> None:
    """Run the receiver (the ``registry-receiver`` console script)."""
    settings = Settings.from_args(argv, os.environ)
    configure_logging()
    asyncio.run(run(settings))
