"""A1111's error body `{error, detail, body, errors}`, the X-Process-Time header and --api-log lines."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sdweb.core.errors import UserError

log = logging.getLogger(__name__)
request_log = logging.getLogger("sdweb.api.requests")


def error_body(error: str, detail: object, errors: str) -> dict[str, object]:
    return {"error": error, "detail": detail, "body": "", "errors": errors}


def install_error_handlers(app: FastAPI) -> None:
    if getattr(app.state, "sdweb_error_handlers", False):
        return
    app.state.sdweb_error_handlers = True

    @app.middleware("http")
    async def process_time(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Process-Time"] = f"{time.perf_counter() - started:.4f}"
        return response

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> JSONResponse:
        body = error_body(type(exc).__name__, exc.message, str(exc))
        body["hint"] = exc.hint
        body["code"] = exc.code
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422 shape (A1111 keeps it), also for a body that is not JSON at all."""
        issues = [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse({"detail": issues}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body("HTTPException", exc.detail, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse(error_body(type(exc).__name__, "Internal server error; see the server log.",
                                       str(exc)), status_code=500)


def install_request_log(app: FastAPI, enabled: bool) -> None:
    """--api-log: one line per /sdapi request, as A1111 prints it (status, client, method, path, seconds)."""
    if not enabled or getattr(app.state, "sdweb_request_log", False):
        return
    app.state.sdweb_request_log = True

    @app.middleware("http")
    async def log_request(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith("/sdapi/"):
            client = request.client.host if request.client else "-"
            request_log.info("API %s %s %s %s %.4f", response.status_code, client, request.method,
                             request.url.path, time.perf_counter() - started)
        return response
