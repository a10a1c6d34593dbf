"""The admin port's routes: fault modes, counters, tampering and reset (not part of the contract).

Why this exists: tests and demos steer the receiver from outside its data port, so ``down``
can close the data port while the admin port keeps answering.

Usage (see deploy/registry-receiver/README.md)::

    PUT  /_admin/faults              {"mode": "fail", "status": 503, "probability": 0.5}
    GET  /_admin/stats               {"pushes_received", "pushes_applied", "applied_per_key"}
    PUT  /_admin/bodies/{code}/rows  {"rows": [...]}
    POST /_admin/reset
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from registry_receiver.faults import FaultBoard, FaultMode, Faults
from registry_receiver.problems import problem_response
from registry_receiver.schemas import Row
from registry_receiver.store import Store

log = logging.getLogger(__name__)
router = APIRouter(prefix="/_admin")


class DataPort(Protocol):
    """The data port's listener, which ``down`` closes and any other mode opens."""

    @property
    def is_open(self) -> bool:
        """Return whether the data port accepts connections."""
        ...

    async def open(self) -> None:
        """Start accepting connections (no-op if open)."""

    async def close(self) -> None:
        """Stop accepting connections, so they are refused (no-op if closed)."""


class TamperRequest(BaseModel):
    """The rows to hold instead of the pushed ones."""

    model_config = ConfigDict(extra="forbid")

    rows: list[Row]


def _board(request: Request) -> FaultBoard:
    board: FaultBoard = request.app.state.board
    return board


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _data_port(request: Request) -> DataPort:
    port: DataPort = request.app.state.data_port
    return port


BoardDep = Annotated[FaultBoard, Depends(_board)]
StoreDep = Annotated[Store, Depends(_store)]
DataPortDep = Annotated[DataPort, Depends(_data_port)]


async def apply_faults(faults: Faults, board: FaultBoard, data_port: DataPort) -> None:
    """Put `faults` in force; open or close the data port before returning."""
    board.current = faults
    if faults.mode is FaultMode.DOWN:
        await data_port.close()
    else:
        await data_port.open()
    log.info("faults %s", faults.model_dump_json())


@router.get("/faults")
async def get_faults(board: BoardDep) -> Faults:
    """Return the fault mode in force."""
    return board.current


@router.put("/faults")
async def put_faults(faults: Faults, board: BoardDep, data_port: DataPortDep) -> Faults:
    """Set the fault mode; the data port is already closed (down) or open (others) on return."""
    await apply_faults(faults, board, data_port)
    return board.current


@router.get("/stats")
async def get_stats(store: StoreDep) -> dict[str, Any]:
    """Return the pushes received and applied, and how many times each key was applied."""
    return dataclasses.asdict(store.stats())


@router.put("/bodies/{body_code}/rows")
async def tamper(
    body_code: str, body: TamperRequest, request: Request, store: StoreDep
) -> Response:
    """Alter a held table behind the sender's back (version and stored hash kept)."""
    if not store.tamper(body_code, body.rows):
        return problem_response(
            404, "body-not-found", "No table is held for this body", instance=request.url.path
        )
    log.info("tampered body=%s rows=%d", body_code, len(body.rows))
    return JSONResponse({"body_code": body_code, "rows": len(body.rows)})


@router.post("/reset")
async def reset(store: StoreDep, board: BoardDep, data_port: DataPortDep) -> dict[str, str]:
    """Forget every body, key and counter, and go back to fault mode ``ok``."""
    store.reset()
    await apply_faults(Faults(), board, data_port)
    return {"status": "reset"}


@router.get("/healthz")
async def healthz(data_port: DataPortDep) -> dict[str, str]:
    """Answer while the process lives, saying whether the data port is open."""
    return {"status": "ok", "data_port": "open" if data_port.is_open else "closed"}
