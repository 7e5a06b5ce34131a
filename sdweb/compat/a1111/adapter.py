"""An A1111 Script as an sdweb Script: sdweb's job hooks call A1111's hooks in A1111's order with A1111's `p`.

sdweb hook            -> A1111 hooks
before_process        -> setup, before_process
process               -> process (all_prompts / all_seeds filled first; changed prompts flow back per batch)
process_batch         -> before_process_batch, after_extra_networks_activate, process_batch (keyword arguments
                         batch_number, prompts, seeds, subseeds)
on_step               -> script_callbacks' cfg_denoiser / cfg_denoised / cfg_after_cfg (read-only)
postprocess_image     -> postprocess_image (PostprocessImageArgs), postprocess_image_after_composite
postprocess           -> postprocess (Processed over sdweb's result: its lists are the result's lists)
run (selectable)      -> run; a returned Processed becomes the job's result
A1111 creates one instance of each script per tab; so does this layer (`for_img2img`).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from sdweb.compat.a1111.modules.processing import Processed, StableDiffusionProcessing
from sdweb.compat.a1111.modules.script_callbacks import run_step_callbacks
from sdweb.compat.a1111.modules.scripts import PostprocessImageArgs
from sdweb.compat.a1111.modules.scripts import Script as A1111Script
from sdweb.compat.a1111.world import WORLD
from sdweb.extensions.api import AlwaysVisible, Processing, Script, StepInfo

SPLIT_NOTE = ("An A1111 script gave different prompts to images of one batch: the batch ran as {count} batches "
              "of one image (same seeds).")


class A1111ScriptAdapter(Script):
    def __init__(self, script: A1111Script, for_img2img: bool) -> None:
        self.script = script
        self.for_img2img = for_img2img
        script.is_img2img, script.is_txt2img = for_img2img, not for_img2img

    def title(self) -> str:
        return str(self.script.title())

    def show(self, is_img2img: bool) -> Any:
        if is_img2img != self.for_img2img:
            return False
        shown = self.script.show(is_img2img)
        self.script.alwayson = shown is AlwaysVisible
        return AlwaysVisible if shown is AlwaysVisible else bool(shown)

    def ui(self, is_img2img: bool) -> list[Any]:
        return list(self.script.ui(is_img2img) or [])

    # -- hooks -------------------------------------------------------------------------------------------------------
    def _p(self, p: Processing) -> StableDiffusionProcessing:
        facade = StableDiffusionProcessing.wrap(p)
        WORLD.job = facade
        return facade

    def before_process(self, p: Processing, *args: Any) -> None:
        facade = self._p(p)
        self.script.setup(facade, *args)
        self.script.before_process(facade, *args)

    def process(self, p: Processing, *args: Any) -> None:
        facade = self._p(p)
        facade.setup_prompts()
        WORLD.loaded_model = p.model
        self.script.process(facade, *args)
        _one_prompt_per_batch(facade)

    def process_batch(self, p: Processing, *args: Any) -> None:
        facade = self._p(p)
        if facade.all_prompts is None:
            facade.setup_prompts()
        prompts, negatives = facade.batch_prompts(p.batch_number)
        batch = {"batch_number": p.batch_number, "prompts": prompts, "seeds": list(p.seeds),
                 "subseeds": list(p.subseeds)}
        self.script.before_process_batch(facade, *args, **batch)
        self.script.after_extra_networks_activate(facade, *args, **batch, extra_network_data={})
        self.script.process_batch(facade, *args, **batch)
        if facade.prompts_changed() or prompts != facade.batch_prompts(p.batch_number)[0]:
            p.styles = []  # A1111's all_prompts have the styles applied already
            p.prompt = prompts[0] if prompts else p.prompt
            p.negative_prompt = negatives[0] if negatives else p.negative_prompt

    def on_step(self, p: Processing, info: StepInfo, *args: Any) -> None:
        WORLD.sampling_step, WORLD.sampling_steps = info.step, info.total
        if p.state.get("a1111_step") != info.step:  # once per step, whichever A1111 script comes first
            p.state["a1111_step"] = info.step
            run_step_callbacks(info.step, info.total, info.latents)

    def postprocess_image(self, p: Processing, image: Image.Image, *args: Any) -> Image.Image | None:
        facade = self._p(p)
        pp = PostprocessImageArgs(image)
        self.script.postprocess_image(facade, pp, *args)
        self.script.postprocess_image_after_composite(facade, pp, *args)
        return pp.image if isinstance(pp.image, Image.Image) else None

    def postprocess(self, p: Processing, result: Any, *args: Any) -> None:
        facade = self._p(p)
        self.script.postprocess(facade, Processed.from_result(facade, result), *args)
        WORLD.job = None

    def run(self, p: Processing, *args: Any) -> Any:
        facade = self._p(p)
        processed = self.script.run(facade, *args)
        if isinstance(processed, Processed) and processed.result is not None:
            result = processed.result
            result.images, result.infotexts = processed.images, processed.infotexts
            return result
        return None


def _one_prompt_per_batch(facade: StableDiffusionProcessing) -> None:
    """sdweb encodes one prompt per batch: when a script gave one batch several prompts, run each image as its
    own batch (the seeds stay those A1111 would use, so the images are the same)."""
    p = facade.sdweb_p
    size = p.batch_size
    if size <= 1 or not facade.prompts_changed():
        return
    mixed = any(len(set(facade.batch_prompts(index)[0])) > 1 or len(set(facade.batch_prompts(index)[1])) > 1
                for index in range(p.n_iter))
    if mixed:
        note = SPLIT_NOTE.format(count=p.n_iter * size)
        p.n_iter, p.batch_size = p.n_iter * size, 1
        if note not in p.notes:
            p.notes.append(note)
