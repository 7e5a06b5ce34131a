"""Prompts from file or textbox (A1111's scripts/prompts_from_file.py): one job per line, a line being a
prompt or A1111's options (`--prompt "a cat" --steps 20 --seed 1`, see common/prompt_lines.py); the images of
every line are returned together.

`script_args`: checkbox_iterate (False: "Iterate seed every line"), checkbox_iterate_batch (False: "Use same
random seed for all lines"), prompt_position ("start" / "end": where a line's prompt goes when the prompt box
has text too), prompt_txt (the lines).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sdweb.builtin_scripts.common.elem import elem_prefix
from sdweb.builtin_scripts.common.prompt_lines import read_lines
from sdweb.builtin_scripts.common.results import Collected, script_result
from sdweb.extensions.api import GenerationResult, Processing, Script, UserError

TITLE = "Prompts from file or textbox"
MAX_FILE_BYTES = 4 * 1024 * 1024


def load_prompt_file(data: bytes | None) -> tuple[None, Any]:
    """An uploaded file's lines into the text box (then the upload is cleared)."""
    import gradio as gr
    if data is None:
        return None, gr.Textbox()
    if len(data) > MAX_FILE_BYTES:
        raise gr.Error(f"The prompt file is {len(data) // 1024} KB; the limit is {MAX_FILE_BYTES // 1024} KB.")
    lines = [line.strip() for line in data.decode("utf-8", errors="ignore").splitlines()]
    return None, gr.Textbox(value="\n".join(lines), lines=7)


def _apply(run: Processing, options: dict[str, Any], services: Any, notes: list[str]) -> None:
    for name, value in options.items():
        if name == "sd_model":
            run.override_settings = {**run.override_settings, "sd_model_checkpoint": value}
        elif name == "sampler_index":
            names = services.sampler_names()
            if not 0 <= value < len(names):
                raise ValueError(f"--sampler_index {value} is not 0 to {len(names) - 1}")
            run.sampler_name = names[value]
        elif name in ("outpath_samples", "outpath_grids"):
            notes.append(f"--{name} is not supported: output folders are set in Settings.")
        elif name != "prompt_for_display":
            setattr(run, name, value)


def _combine(line_text: str, base: str, position: str) -> str:
    if not line_text or not base:
        return line_text or base
    return f"{line_text} {base}" if position == "start" else f"{base} {line_text}"


class PromptsFromFile(Script):
    def title(self) -> str:
        return TITLE

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        prefix = elem_prefix(is_img2img, "prompts_from_file_or_textbox")
        iterate = gr.Checkbox(label="Iterate seed every line", value=False, elem_id=f"{prefix}_checkbox_iterate")
        same_seed = gr.Checkbox(label="Use same random seed for all lines", value=False,
                                elem_id=f"{prefix}_checkbox_iterate_batch")
        position = gr.Radio(["start", "end"], label="Insert prompts at the", value="start",
                            elem_id=f"{prefix}_prompt_position")
        text = gr.Textbox(label="List of prompt inputs", lines=2, elem_id=f"{prefix}_prompt_txt",
                          placeholder='a cat\n--prompt "a dog" --negative_prompt "blurry" --steps 30 --seed 1')
        upload = gr.File(label="Upload prompt inputs", type="binary", elem_id=f"{prefix}_file")
        upload.upload(load_prompt_file, inputs=upload, outputs=[upload, text], queue=False, api_visibility="private")
        return [iterate, same_seed, position, text]

    def run(self, p: Processing, checkbox_iterate: Any = False, checkbox_iterate_batch: Any = False,
            prompt_position: Any = "start", prompt_txt: Any = "", *_: Any) -> GenerationResult:
        jobs = read_lines(str(prompt_txt or ""))
        if not jobs:
            raise UserError("Prompts from file or textbox: the list of prompt inputs is empty.",
                            code="invalid_script_args", hint="Put one prompt (or --prompt ... options) per line.")
        if (checkbox_iterate or checkbox_iterate_batch) and p.seed == -1:
            p.fix_seed()
        runs = self._prepare(p, jobs, str(prompt_position))
        p.plan_runs(len(runs))
        collected = Collected(notes=[problem for _, problem in jobs if problem])
        for (options, _), (run, notes) in zip(jobs, runs, strict=True):
            if p.interrupted:
                collected.interrupted = True
                break
            if "seed" not in options:
                run.seed = p.seed  # moves on after each line with "Iterate seed every line"
            result = run.process_images()
            collected.add_run(result)
            collected.notes += [note for note in notes if note not in collected.notes]
            if checkbox_iterate:
                p.seed = p.seed + p.batch_size * p.n_iter
            if result.interrupted:
                break
        return script_result(collected)

    def _prepare(self, p: Processing, jobs: list[tuple[dict[str, Any], str | None]], position: str
                 ) -> list[tuple[Processing, list[str]]]:
        """Every line's job, checked before the first image (a bad value names its line)."""
        runs = []
        for number, (options, _) in enumerate(jobs, start=1):
            run, notes = p.copy(), []
            run.do_not_save_grid = True
            try:
                _apply(run, options, p.services, notes)
                if "prompt" in options:
                    run.prompt = _combine(options["prompt"], p.prompt, position)
                if "negative_prompt" in options:
                    run.negative_prompt = _combine(options["negative_prompt"], p.negative_prompt, position)
            except (ValidationError, ValueError) as error:
                problem = "; ".join(str(item.get("msg", "")) for item in error.errors()) \
                    if isinstance(error, ValidationError) else str(error)
                raise UserError(f"Prompts from file or textbox, line {number}: {problem}",
                                code="invalid_script_args") from None
            runs.append((run, notes))
        return runs
