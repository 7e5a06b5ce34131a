"""Mount the AUTOMATIC1111-compatible /sdapi/v1 routes on the FastAPI app (before Gradio)."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from sdweb.api.a1111.backends import default_backends
from sdweb.api.a1111.errors import install_error_handlers, install_request_log
from sdweb.api.a1111.openapi import install_openapi
from sdweb.api.a1111.routes_extensions import extension_router
from sdweb.api.a1111.routes_generation import add_generation_routes
from sdweb.api.a1111.routes_info import add_info_routes, add_system_routes
from sdweb.api.a1111.routes_postprocess import add_postprocess_routes
from sdweb.api.a1111.routes_workers import workers_router
from sdweb.api.a1111.schemas_info import ErrorResponse
from sdweb.api.a1111.seams import ApiBackends
from sdweb.api.auth import install_api_auth
from sdweb.state import AppState


class StopControl(Protocol):
    restartable: bool

    def stop(self, restart: bool = False) -> None: ...


def mount_api(app: FastAPI, state: AppState, control: StopControl | None = None,
              backends: ApiBackends | None = None) -> None:
    """Add /sdapi/v1 to `app`. `backends` plugs in scripts, extensions and postprocessing (seams.py);
    default: backends.default_backends(state) (the extension layer's scripts, the app's postprocessing)."""
    backends = backends or default_backends(state)
    install_error_handlers(app)
    install_request_log(app, state.options.api_log)
    install_api_auth(app, state.options)
    install_openapi(app)
    router = APIRouter(prefix="/sdapi/v1")
    add_info_routes(router, state)
    add_generation_routes(router, state, backends)
    add_system_routes(router, state, backends)
    add_postprocess_routes(router, state, backends)
    if state.options.api_server_stop and control is not None:
        add_server_routes(router, control)
    app.include_router(router)
    app.include_router(extension_router(state))  # /sdweb/v1/extensions: install, update, remove, list
    app.include_router(workers_router(state))  # /sdweb/v1/workers, /sdweb/v1/queue


def add_server_routes(router: APIRouter, control: StopControl) -> None:
    """--api-server-stop: end the server (the launcher relaunches it after a restart)."""

    @router.post("/server-kill", response_model=dict)
    def server_kill() -> dict:
        control.stop()
        return {}

    @router.post("/server-stop", response_model=dict)
    def server_stop() -> dict:
        control.stop()
        return {}

    @router.post("/server-restart", response_model=dict,
                 responses={501: {"model": ErrorResponse, "description": "not started by the launcher"}})
    def server_restart() -> JSONResponse:
        if not control.restartable:
            return JSONResponse({"error": "NotImplemented", "detail": "Restart needs the launcher (webui.sh / "
                                 "webui.bat), which relaunches the app.", "body": "", "errors": ""},
                                status_code=501)
        control.stop(restart=True)
        return JSONResponse({})
