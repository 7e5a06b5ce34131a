"""A1111's built-in scripts (its scripts/ folder), on sdweb's script API (sdweb.extensions.api only).

Each module holds one selectable script (the Script dropdown, API `script_name` / `script_args` with A1111's
argument order); the loader imports them in file-name order, as A1111 lists its own scripts, before any
extension's. `common/` holds their shared pure helpers (value ranges, axes, tiles, noise fill, results).
Scripts drive jobs (`p.copy()`, `copy.process_images()`); generation stays in the service.
They import gradio inside `ui()` and its callbacks only, so building the app state (API, job queue, the first
image) does not pay gradio's import; tests/unit/test_lean_start.py checks it.
"""
