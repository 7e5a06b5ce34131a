"""The page's Queue panel (jobs waiting, running on which worker, done) and the Workers panel in Settings
(device, node, loaded model, busy). Both show what /sdweb/v1/queue and /sdweb/v1/workers return, refreshed
every few seconds while open."""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape
from typing import Any

import gradio as gr

from sdweb.generation.queue_view import queue_view, workers_view
from sdweb.state import AppState

REFRESH_S = 2.0
DONE_SHOWN = 10


def _table(elem_class: str, headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="sdweb-panel-empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="sdweb-panel-table {elem_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _model(checkpoint: str | None) -> str:
    return checkpoint or "—"


def _workers(job: dict[str, Any]) -> str:
    names = ", ".join(job["workers"]) or "—"
    return f"{names} ({job['images']} images)" if job["images"] else names


def queue_html(view: dict[str, list[dict[str, Any]]], now: float | None = None) -> str:
    """The queue as three tables: waiting (in order), running (on which workers, how far), done (newest first)."""
    now = time.time() if now is None else now
    waiting = [[str(job["position"] + 1), job["id"], job["kind"], _model(job["checkpoint"]),
                f"{now - job['created_at']:.0f} s"] for job in view["waiting"]]
    running = [[job["id"], job["kind"], _model(job["checkpoint"]), _workers(job), f"{job['progress'] * 100:.0f} %"]
               for job in view["running"]]
    done = [[job["id"], job["kind"], job["status"], _workers(job),
             f"{(job['finished_at'] or now) - (job['started_at'] or job['created_at']):.1f} s"]
            for job in reversed(view["finished"][-DONE_SHOWN:])]
    return "".join([
        f"<h4>Waiting ({len(waiting)})</h4>",
        _table("sdweb-queue-waiting", ["#", "job", "kind", "checkpoint", "waited"], waiting, "Nothing waiting."),
        f"<h4>Running ({len(running)})</h4>",
        _table("sdweb-queue-running", ["job", "kind", "checkpoint", "worker", "progress"], running,
               "Nothing running."),
        "<h4>Done</h4>",
        _table("sdweb-queue-done", ["job", "kind", "status", "worker", "took"], done, "Nothing done yet."),
    ])


def workers_html(workers: list[dict[str, Any]]) -> str:
    rows = [[worker["id"], worker["node"], " ".join(part for part in (worker["device"], worker["device_name"]) if part),
             ", ".join(worker["loaded"]) or "—", f"busy: {worker['job']}" if worker["busy"] else "idle",
             str(worker["loads"]), str(worker["jobs_done"])] for worker in workers]
    return _table("sdweb-workers", ["worker", "node", "device", "loaded model", "state", "loads", "jobs done"], rows,
                  "No workers.")


@dataclass
class Panel:
    html: gr.HTML
    timer: gr.Timer


def _live_panel(label: str, elem_id: str, render: Any) -> Panel:
    """An accordion whose HTML is rendered when it opens and every REFRESH_S seconds while it is open."""
    with gr.Accordion(label, open=False, elem_id=elem_id) as accordion:
        html = gr.HTML("", elem_id=f"{elem_id}_html")
        refresh = gr.Button("Refresh", size="sm", elem_id=f"{elem_id}_refresh", scale=0)
    timer = gr.Timer(REFRESH_S, active=False)
    accordion.expand(lambda: (render(), gr.Timer(active=True)), outputs=[html, timer], queue=False,
                     api_visibility="private")
    accordion.collapse(lambda: gr.Timer(active=False), outputs=timer, queue=False, api_visibility="private")
    for event in (timer.tick, refresh.click):
        event(render, outputs=html, queue=False, show_progress="hidden", api_visibility="private")
    return Panel(html=html, timer=timer)


def build_queue_panel(state: AppState) -> Panel:
    return _live_panel("Queue", "sdweb_queue", lambda: queue_html(queue_view(state.queue)))


def build_workers_panel(state: AppState) -> Panel:
    return _live_panel("Workers", "sdweb_workers", lambda: workers_html(workers_view(state.queue)))
