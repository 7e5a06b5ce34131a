"""Mount the AUTOMATIC1111-compatible /sdapi/v1 routes on the FastAPI app (before Gradio)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from sdweb.api.a1111.errors import install_error_handlers
from sdweb.api.a1111.routes_generation import add_generation_routes
from sdweb.api.a1111.routes_info import add_info_routes, add_system_routes, add_unavailable_routes
from sdweb.api.auth import api_credentials, basic_auth_dependency
from sdweb.state import AppState


def mount_api(app: FastAPI, state: AppState) -> None:
    install_error_handlers(app)
    check = basic_auth_dependency(api_credentials(state.options))
    router = APIRouter(prefix="/sdapi/v1", dependencies=[Depends(check)] if check else [])
    add_info_routes(router, state)
    add_generation_routes(router, state)
    add_system_routes(router, state)
    add_unavailable_routes(router)
    app.include_router(router)
