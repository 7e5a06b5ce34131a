"""`python -m sdweb` for the reliability tests, plus one read-only route, /probe/jobs, that reports the queue's
own bookkeeping (submission, start and finish times per task id), the way an extension adds a route."""

from __future__ import annotations

import sys

import uvicorn

from sdweb.cli import parse_options
from sdweb.server import ServerControl, create_app
from sdweb.state import build_app_state


def main(argv: list[str]) -> int:
    options = parse_options(argv, {})
    state = build_app_state(options)
    control = ServerControl()
    app = create_app(state, control)

    def jobs(ids: str) -> list[dict]:
        found = [state.queue.get(task_id) for task_id in ids.split(",") if task_id]
        return [{"id": job.id, "status": job.status, "submitted": job.created_at,
                 "started": job.progress.started_at, "finished": job.finished_at} for job in found if job]

    app.add_api_route("/probe/jobs", jobs, methods=["GET"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=options.port, log_level="warning"))
    control.server = server
    server.run()
    state.queue.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
