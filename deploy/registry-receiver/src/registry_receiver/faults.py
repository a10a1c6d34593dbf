"""Fault injection on the data port: slow, failing and dropped answers, decided per request.

Why this exists: registry-sync promises at-least-once delivery with at-most-once effect; that
is only believable once it has been seen surviving a registry that is slow, answers 5xx, drops
the connection before or after applying, or is down. The admin port sets the mode;
`FaultInjector` (an ASGI middleware around the data app) acts on it. ``down`` is not handled
here: the process closes the data port's listening socket (`registry_receiver.main`).

Usage::

    board = FaultBoard()
    app = FaultInjector(data_app, board=board, on_push=store.count_received)
    board.current = Faults(mode=FaultMode.FAIL, status=503, probability=0.5)

Notes: a fault applies to every request of the data port (pushes and reads) with the given
probability. A dropped connection sends no byte: the connection's transport is aborted (uvicorn's
``send`` is bound to its request cycle, which holds the transport). If an ASGI server hid the
transport, the fallback sends a response head and raises, which makes the server close the
connection mid-response: the client still gets no answer it can read.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry_receiver.problems import problem_response

log = logging.getLogger(__name__)
PUSH_PATH = re.compile(r"^/v1/bodies/[^/]+/table$")


class FaultMode(StrEnum):
    """How the data port misbehaves."""

    OK = "ok"
    SLOW = "slow"
    FAIL = "fail"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"
    DOWN = "down"


class Faults(BaseModel):
    """The body of ``PUT /_admin/faults`` and the answer of ``GET /_admin/faults``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: FaultMode = FaultMode.OK
    delay_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    status: Annotated[int, Field(ge=400, le=599)] = 503
    probability: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class FaultBoard:
    """The fault mode in force (process memory only: a restarted receiver starts ``ok``)."""

    def __init__(self) -> None:
        self.current = Faults()


class ConnectionDroppedError(Exception):
    """Raised after a response head to make the ASGI server close the connection (fallback)."""


async def drop_connection(send: Send) -> None:
    """Close the client's connection without an answer."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.Transport):
        transport.abort()
        # Let the server's protocol see the loss before the app returns, so it does not try to
        # answer 500 on the dead connection.
        await asyncio.sleep(0)
        return
    await send(
        {"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"1")]}
    )
    raise ConnectionDroppedError


async def _discard(message: Message) -> None:
    """Swallow the app's answer (``drop_after``: applied, never acknowledged)."""


class FaultInjector:
    """ASGI middleware applying the board's fault to each request it strikes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        board: FaultBoard,
        on_push: Callable[[], None],
        rng: random.Random | None = None,
    ) -> None:
        self.app = app
        self.board = board
        self.on_push = on_push
        self.rng = rng if rng is not None else random.Random()  # noqa: S311  (faults, not secrets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count pushes, then serve the request as the fault in force says."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "PUT" and PUSH_PATH.match(scope["path"]):
            self.on_push()
        faults = self.board.current
        if faults.mode in (FaultMode.OK, FaultMode.DOWN) or not self._strikes(faults):
            await self.app(scope, receive, send)
            return
        log.info("fault %s on %s %s", faults.mode.value, scope["method"], scope["path"])
        await self._misbehave(faults, scope, receive, send)

    def _strikes(self, faults: Faults) -> bool:
        return faults.probability >= 1.0 or self.rng.random() < faults.probability

    async def _misbehave(self, faults: Faults, scope: Scope, receive: Receive, send: Send) -> None:
        match faults.mode:
            case FaultMode.SLOW:
                await asyncio.sleep(faults.delay_ms / 1000)
                await self.app(scope, receive, send)
            case FaultMode.FAIL:
                response = problem_response(
                    faults.status,
                    "injected-fault",
                    "Injected fault",
                    "The receiver was told to fail this request; nothing was applied.",
                )
                await response(scope, receive, send)
            case FaultMode.DROP_BEFORE:
                await drop_connection(send)
            case FaultMode.DROP_AFTER:
                await self.app(scope, receive, _discard)
                await drop_connection(send)
            case FaultMode.OK | FaultMode.DOWN:  # served normally by __call__
                await self.app(scope, receive, send)
