"""The units HTTP API. So far it serves the operations endpoints shared by every service."""

from __future__ import annotations

from fastapi import APIRouter

from shared.web import health_router

router = APIRouter()
router.include_router(health_router)
