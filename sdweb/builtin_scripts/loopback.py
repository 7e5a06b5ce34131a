"""Loopback (A1111's scripts/loopback.py, img2img): each result is the next loop's init image, the denoising
strength moving from the job's value to the final one along a curve; optionally the prompt gets an
interrogated caption of the current image appended every loop. With several loops the history is shown as a
one-row grid first.

`script_args`: loops (4), final_denoising_strength (0.5), denoising_curve ("Aggressive" / "Linear" / "Lazy"),
append_interrogation ("None" / "CLIP" / "DeepBooru").
"""

from __future__ import annotations

import math
from typing import Any

from sdweb.builtin_scripts.common.elem import elem_prefix
from sdweb.builtin_scripts.common.results import Collected, script_result
from sdweb.extensions.api import GenerationResult, Processing, Script, UserError, make_grid

TITLE = "Loopback"
CURVES = ("Aggressive", "Linear", "Lazy")
INTERROGATORS = ("None", "CLIP", "DeepBooru")
MAX_LOOPS = 32


def loop_strength(loop: int, loops: int, initial: float, final: float, curve: str) -> float:
    """The denoising strength for loop number `loop` (0 = the first, which uses the job's own)."""
    if loops == 1:
        return initial
    progress = loop / (loops - 1)
    if curve == "Aggressive":
        shaped = math.sin(progress * math.pi * 0.5)
    elif curve == "Lazy":
        shaped = 1 - math.cos(progress * math.pi * 0.5)
    else:
        shaped = progress
    return initial + (final - initial) * shaped


class Loopback(Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        prefix = elem_prefix(is_img2img, "loopback")
        loops = gr.Slider(minimum=1, maximum=MAX_LOOPS, step=1, label="Loops", value=4, elem_id=f"{prefix}_loops")
        final = gr.Slider(minimum=0, maximum=1, step=0.01, label="Final denoising strength", value=0.5,
                          elem_id=f"{prefix}_final_denoising_strength")
        curve = gr.Dropdown(label="Denoising strength curve", choices=list(CURVES), value="Linear",
                            elem_id=f"{prefix}_denoising_curve")
        interrogate = gr.Dropdown(label="Append interrogated prompt at each iteration", choices=list(INTERROGATORS),
                                  value="None", elem_id=f"{prefix}_append_interrogation")
        return [loops, final, curve, interrogate]

    def run(self, p: Processing, loops: Any = 4, final_denoising_strength: Any = 0.5,
            denoising_curve: Any = "Linear", append_interrogation: Any = "None", *_: Any) -> GenerationResult:
        loops, final, curve, interrogator = self._checked(loops, final_denoising_strength, denoising_curve,
                                                          append_interrogation)
        if not p.init_images:
            raise UserError("Loopback needs an init image.", code="missing_image")
        p.fix_seed()
        batch_count, initial = p.n_iter, p.denoising_strength
        p.extra_generation_params.clear()  # as A1111: the loop's own keys replace the job's extras
        p.extra_generation_params.update({"Final denoising strength": final, "Denoising curve": curve})
        p.plan_runs(loops * batch_count)
        collected, history = Collected(), []
        for _batch in range(batch_count):
            current, strength, last = p.init_images[:1], initial, None
            for loop in range(loops):
                if p.interrupted:
                    collected.interrupted = True
                    break
                run = p.copy()
                run.init_images, run.denoising_strength = current, strength  # one image: batch size 1 fits
                run.batch_size, run.n_iter, run.do_not_save_grid = 1, 1, True
                if loop > 0:
                    run.inpainting_fill = 1  # "original": later loops repaint the last result
                if interrogator != "None":
                    caption = p.services.interrogate(current[0], interrogator)
                    run.prompt = (f"{p.prompt}, " if p.prompt else "") + caption
                result = run.process_images()
                collected.add_run(result, keep_images=False)
                if result.interrupted or not result.images:
                    collected.interrupted = collected.interrupted or result.interrupted
                    break
                p.seed = result.seeds[0] + 1
                strength = loop_strength(loop + 1, loops, initial, final, curve)
                last = (result.images[0], result.infotexts[0], result.seeds[0], result.subseeds[0],
                        result.prompts[0], result.negative_prompts[0])
                current = [result.images[0]]
                if batch_count == 1:
                    history.append(last)
            if batch_count > 1 and last is not None and not collected.interrupted:
                history.append(last)
            if collected.interrupted:
                break
        for entry in history:
            collected.add_image(*entry)
        return self._with_grid(p, collected)

    def _checked(self, loops: Any, final: Any, curve: Any, interrogator: Any) -> tuple[int, float, str, str]:
        try:
            count, strength = int(float(loops)), float(final)
        except (TypeError, ValueError):
            raise UserError(f"Loopback: loops {loops!r} and final denoising strength {final!r} must be numbers.",
                            code="invalid_script_args") from None
        if not 1 <= count <= MAX_LOOPS or not 0 <= strength <= 1:
            raise UserError(f"Loopback: loops must be 1 to {MAX_LOOPS} and the final denoising strength 0 to 1 "
                            f"(got {count} and {strength:g}).", code="invalid_script_args")
        if curve not in CURVES or interrogator not in INTERROGATORS:
            raise UserError(f"Loopback: curve {curve!r} or interrogation {interrogator!r} is not known.",
                            code="invalid_script_args",
                            hint=f"Curves: {', '.join(CURVES)}; interrogation: {', '.join(INTERROGATORS)}.")
        return count, strength, str(curve), str(interrogator)

    def _with_grid(self, p: Processing, collected: Collected) -> GenerationResult:
        if len(collected.images) < 2:
            return script_result(collected)
        grid = make_grid(collected.images, rows=1)
        infotext = collected.infotexts[0]
        path = p.save_image(grid, infotext, "grid", seed=collected.seeds[0], grid=True)
        if path is not None:
            collected.saved_paths.append(path)
        if not p.services.setting("return_grid", True):
            return script_result(collected)
        return script_result(collected, [(grid, infotext)])
