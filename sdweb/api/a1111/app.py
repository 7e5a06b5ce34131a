"""Mount the AUTOMATIC1111-compatible /sdapi/v1 routes on the FastAPI app (before Gradio)."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse

from sdweb.api.a1111.errors import install_error_handlers
from sdweb.api.a1111.routes_generation import add_generation_routes
from sdweb.api.a1111.routes_info import add_info_routes, add_system_routes, add_unavailable_routes
from sdweb.api.auth import api_credentials, basic_auth_dependency
from sdweb.state import AppState


class StopControl(Protocol):
    restartable: bool

    def stop(self, restart: bool = False) -> None: ...


def mount_api(app: FastAPI, state: AppState, control: StopControl | None = None) -> None:
    install_error_handlers(app)
    check = basic_auth_dependency(api_credentials(state.options))
    router = APIRouter(prefix="/sdapi/v1", dependencies=[Depends(check)] if check else [])
    add_info_routes(router, state)
    add_generation_routes(router, state)
    add_system_routes(router, state)
    add_unavailable_routes(router)
    if getattr(state.options, "api_server_stop", False) and control is not None:
        add_server_routes(router, control)
    app.include_router(router)


def add_server_routes(router: APIRouter, control: StopControl) -> None:
    """--api-server-stop: end the server (the launcher relaunches it after a restart)."""

    @router.post("/server-kill")
    def server_kill() -> dict:
        control.stop()
        return {}

    @router.post("/server-stop")
    def server_stop() -> dict:
        control.stop()
        return {}

    @router.post("/server-restart", responses={501: {"description": "not started by the launcher"}})
    def server_restart() -> JSONResponse:
        if not control.restartable:
            return JSONResponse({"error": "NotImplemented", "detail": "Restart needs the launcher (webui.sh / "
                                 "webui.bat), which relaunches the app.", "body": "", "errors": ""},
                                status_code=501)
        control.stop(restart=True)
        return JSONResponse({})
