"""A1111's error body `{error, detail, body, errors}` and the X-Process-Time header."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sdweb.core.errors import UserError

log = logging.getLogger(__name__)


def error_body(error: str, detail: object, errors: str) -> dict[str, object]:
    return {"error": error, "detail": detail, "body": "", "errors": errors}


def install_error_handlers(app: FastAPI) -> None:
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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body("HTTPException", exc.detail, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse(error_body(type(exc).__name__, "Internal server error; see the server log.",
                                       str(exc)), status_code=500)
