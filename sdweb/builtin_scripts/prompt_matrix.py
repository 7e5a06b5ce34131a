"""Prompt matrix (A1111's scripts/prompt_matrix.py): the prompt split on `|`; the first part is always there,
every other part is on or off, so n parts give 2^(n-1) images in a grid labelled with the parts (struck
through where left out). The grid comes first and is saved (prompt_matrix-NNNN.png).

`script_args`: put_at_start (False), different_seeds (False), prompt_type ("positive" / "negative"),
variations_delimiter ("comma" / "space"), margin_size (0).
"""

from __future__ import annotations

import math
from typing import Any

from sdweb.builtin_scripts.common.elem import elem_prefix
from sdweb.builtin_scripts.common.results import Collected, script_result
from sdweb.extensions.api import (
    GenerationResult,
    GridAnnotation,
    Processing,
    Script,
    UserError,
    draw_grid_annotations,
    make_grid,
)

TITLE = "Prompt matrix"
MAX_PARTS = 11  # 1024 images


def matrix_prompts(prompt: str, put_at_start: bool, delimiter: str) -> tuple[list[str], list[str]]:
    """(the parts, one prompt per combination): combination k has part i+1 when bit i of k is set."""
    parts = prompt.split("|")
    prompts = []
    for combination in range(2 ** (len(parts) - 1)):
        chosen = [text.strip().strip(",") for bit, text in enumerate(parts[1:]) if combination & (1 << bit)]
        ordered = [*chosen, parts[0]] if put_at_start else [parts[0], *chosen]
        prompts.append(delimiter.join(ordered))
    return parts, prompts


def matrix_labels(parts: list[str]) -> tuple[list[list[GridAnnotation]], list[list[GridAnnotation]]]:
    """Column and row labels: the first half of the variable parts across, the rest down."""
    variable = [part.strip() for part in parts[1:]]
    boundary = math.ceil(len(variable) / 2)
    across, down = variable[:boundary], variable[boundary:]

    def labels(names: list[str]) -> list[list[GridAnnotation]]:
        return [[GridAnnotation(name, is_active=bool(position & (1 << bit))) for bit, name in enumerate(names)]
                for position in range(1 << len(names))]

    return labels(across), labels(down)


class PromptMatrix(Script):
    def title(self) -> str:
        return TITLE

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        prefix = elem_prefix(is_img2img, "prompt_matrix")
        with gr.Row():
            with gr.Column():
                put_at_start = gr.Checkbox(label="Put variable parts at start of prompt", value=False,
                                           elem_id=f"{prefix}_put_at_start")
                different_seeds = gr.Checkbox(label="Use different seed for each picture", value=False,
                                              elem_id=f"{prefix}_different_seeds")
            with gr.Column():
                prompt_type = gr.Radio(["positive", "negative"], label="Select prompt", value="positive",
                                       elem_id=f"{prefix}_prompt_type")
                delimiter = gr.Radio(["comma", "space"], label="Select joining char", value="comma",
                                     elem_id=f"{prefix}_variations_delimiter")
            with gr.Column():
                margin = gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2,
                                   elem_id=f"{prefix}_margin_size")
        return [put_at_start, different_seeds, prompt_type, delimiter, margin]

    def run(self, p: Processing, put_at_start: Any = False, different_seeds: Any = False,
            prompt_type: Any = "positive", variations_delimiter: Any = "comma", margin_size: Any = 0,
            *_: Any) -> GenerationResult:
        if prompt_type not in ("positive", "negative"):
            raise UserError(f"Prompt matrix: prompt type {prompt_type!r} is not positive or negative.",
                            code="invalid_script_args")
        if variations_delimiter not in ("comma", "space"):
            raise UserError(f"Prompt matrix: joining char {variations_delimiter!r} is not comma or space.",
                            code="invalid_script_args")
        p.fix_seed()
        source = p.prompt if prompt_type == "positive" else p.negative_prompt
        if source.count("|") >= MAX_PARTS:
            raise UserError(f"Prompt matrix: {source.count('|') + 1} parts would make "
                            f"{2 ** source.count('|')} images; use at most {MAX_PARTS}.", code="invalid_script_args")
        parts, prompts = matrix_prompts(source, bool(put_at_start), ", " if variations_delimiter == "comma" else " ")
        p.plan_runs(len(prompts))
        collected = Collected()
        for index, prompt in enumerate(prompts):
            if p.interrupted:
                collected.interrupted = True
                break
            run = p.copy()
            run.batch_size, run.n_iter, run.do_not_save_grid = 1, 1, True
            run.seed = p.seed + (index if different_seeds else 0)
            if prompt_type == "positive":
                run.prompt = prompt
            else:
                run.negative_prompt = prompt
            result = run.process_images()
            collected.add_run(result)
            if result.interrupted:
                break
        if len(collected.images) < len(prompts):
            return script_result(collected)
        return self._with_grid(p, collected, parts, int(float(margin_size or 0)))

    def _with_grid(self, p: Processing, collected: Collected, parts: list[str], margin: int) -> GenerationResult:
        first = collected.images[0]
        grid = make_grid(collected.images, rows=1 << ((len(parts) - 1) // 2))
        across, down = matrix_labels(parts)
        grid = draw_grid_annotations(grid, first.width, first.height, across, down, max(0, margin))
        infotext = collected.infotexts[0]
        path = p.save_image(grid, infotext, "prompt_matrix", seed=collected.seeds[0], grid=True)
        if path is not None:
            collected.saved_paths.append(path)
        return script_result(collected, [(grid, infotext)])
