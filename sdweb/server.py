"""Build AppState once, mount API routes, then Gradio at "/", and serve with uvicorn."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from sdweb import __version__
from sdweb.api.auth import install_api_auth, ui_credentials
from sdweb.api.body_limit import BodyLimitMiddleware
from sdweb.api.hosts import install_host_check
from sdweb.config import forge_flags
from sdweb.config.environment import apply_app_environment
from sdweb.config.launch_options import LaunchOptions
from sdweb.config.log_filters import quiet_library_noise
from sdweb.core.limits import MAX_REQUEST_BYTES
from sdweb.models.first_run import start_first_run_download
from sdweb.state import AppState, build_app_state

log = logging.getLogger("sdweb")

RESTART_MARKER = Path("tmp") / "restart"
# Open browser tabs keep streams open (Gradio's heartbeat and queue); uvicorn waits this long for them at
# Ctrl-C, SIGTERM or restart, then closes them, so the server stops at once with tabs open (and the page
# reconnects after a restart).
GRACEFUL_SHUTDOWN_S = 1


def bind_host(options: LaunchOptions) -> str:
    """--server-name, else 0.0.0.0 with --listen, else loopback only."""
    if options.server_name:
        return options.server_name
    return "0.0.0.0" if options.listen else "127.0.0.1"


def pick_port(host: str, requested: int | None, nowebui: bool) -> int:
    """The requested port, or the first free one from 7860 (7861 API-only) upward, as Gradio does."""
    if requested:
        return requested
    start = 7861 if nowebui else 7860
    for port in range(start, start + 100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host if host != "0.0.0.0" else "", port))
            except OSError:
                continue
            return port
    raise OSError(f"No free port between {start} and {start + 99}; pass --port.")


class ServerControl:
    """Lets /server-stop and /server-restart end uvicorn cleanly; restart leaves the launcher's marker file.
    `before_shutdown` callbacks run when uvicorn starts shutting down (Ctrl-C, SIGTERM, stop, restart): the
    page's streams are ended there, so open browser tabs never hold the server."""

    def __init__(self) -> None:
        self.server: object | None = None
        self.before_shutdown: list[Callable[[], None]] = []

    def shutting_down(self) -> None:
        for callback in self.before_shutdown:
            try:
                callback()
            except Exception:  # shutting down must go on
                log.exception("A shutdown callback failed")

    @property
    def restartable(self) -> bool:
        return bool(os.environ.get("SD_WEBUI_RESTART"))

    def stop(self, restart: bool = False) -> None:
        if restart:
            marker = Path(os.environ["SD_WEBUI_RESTART"])
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("restart\n")
        if self.server is not None:
            self.server.should_exit = True


def add_cors(app: FastAPI, options: LaunchOptions) -> None:
    origins = options.cors_allow_origins
    regex = options.cors_allow_origins_regex
    if origins or regex:
        app.add_middleware(CORSMiddleware, allow_origins=[o.strip() for o in (origins or "").split(",") if o],
                           allow_origin_regex=regex, allow_credentials=True, allow_methods=["*"],
                           allow_headers=["*"])


def start_extensions(app: FastAPI, state: AppState) -> None:
    """Extensions' on_app_started callbacks (their routes, before Gradio takes "/"); a failure is logged."""
    if state.extensions is None:
        return
    for callback in state.extensions.callbacks.app_started:
        try:
            callback(app)
        except Exception:
            log.exception("An extension's app-started callback failed")


def create_app(state: AppState, control: ServerControl | None = None) -> FastAPI:
    app = FastAPI(title="sdweb", version=__version__, docs_url="/docs", redoc_url="/redoc")
    # API credentials guard every non-UI route, also ones extensions add later (and without --api).
    install_api_auth(app, state.options)

    @app.get("/internal/ping", include_in_schema=False)
    def ping() -> dict:
        return {}

    # API routes first: a Gradio mount at "/" swallows every route registered after it.
    if state.options.api or state.options.nowebui:
        from sdweb.api.a1111.app import mount_api

        mount_api(app, state, control or ServerControl())
    start_extensions(app, state)
    add_cors(app, state.options)  # added last, so it is outermost: a 401 still carries the CORS headers
    if not state.options.nowebui:
        from sdweb.ui.app import end_page_streams, mount_ui

        app = mount_ui(app, state, auth=list(ui_credentials(state.options).items()) or None)
        if control is not None:
            control.before_shutdown.append(lambda: end_page_streams(app))
    # Outermost, so they see every request first, Gradio's included: the body cap, then Host and Origin.
    app.add_middleware(BodyLimitMiddleware, limit=MAX_REQUEST_BYTES)
    install_host_check(app, state.options)
    return app


def serve(config: object, control: ServerControl) -> None:
    """Run uvicorn until Ctrl-C, SIGTERM or a stop/restart route; returns quietly (no traceback at Ctrl-C)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            control.shutting_down()  # end the page's streams first: uvicorn waits for open connections
            await super().shutdown(sockets)

    server = Server(config)
    control.server = server
    with contextlib.suppress(KeyboardInterrupt):  # asyncio re-raises the Ctrl-C that uvicorn already handled
        server.run()


def leave_now(code: int) -> NoReturn:
    """End the process once the server has stopped and the queue is shut down. The interpreter's own teardown
    would garbage-collect torch's, Gradio's and scipy's objects for seconds after everything is saved, so
    the process exits at once (logs and console flushed first)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def run_server(options: LaunchOptions) -> int:
    import uvicorn

    logging.basicConfig(level=(options.loglevel or "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_library_noise()
    forge_flags.apply_torch_settings(options)
    state = build_app_state(options)
    apply_app_environment(state.paths.tmp_dir)
    start_first_run_download(state.registry, options, status=state.first_run)  # no checkpoint yet: A1111's SD 1.5
    if options.share or options.ngrok:
        log.warning("--share / --ngrok tunnels are not supported (sdweb stays offline); serving locally only.")
    host = bind_host(options)
    port = pick_port(host, options.port, options.nowebui)
    control = ServerControl()
    app = create_app(state, control)
    selected = state.selected_checkpoint()
    log.info("sdweb %s: checkpoint %r; open http://%s:%d", __version__, selected.title if selected else None,
             "127.0.0.1" if host == "0.0.0.0" else host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_keep_alive=options.timeout_keep_alive,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                            ssl_keyfile=options.tls_keyfile,
                            ssl_certfile=options.tls_certfile,
                            root_path=f"/{options.subpath.strip('/')}" if options.subpath else "")
    serve(config, control)
    state.queue.shutdown()
    log.info("sdweb stopped.")
    return 0
