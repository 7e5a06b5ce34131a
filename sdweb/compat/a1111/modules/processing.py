"""A1111's `modules.processing`: `p` (StableDiffusionProcessing*), `Processed`, `process_images`, `fix_seed`,
`create_infotext`, as façades over sdweb's job (`sdweb.generation.hooks.Processing`) and its result.

Request fields keep their A1111 names, so `p.prompt = ...`, `p.steps`, `p.n_iter` read and write the job's
request (validated). A1111's per-image lists (`all_prompts`, `all_seeds`, ...) are filled when scripts' `process`
runs; what a script writes into them flows back into the job batch by batch (adapter.py). Attributes A1111
scripts invent (`p.my_state = ...`) are kept on the façade.
"""

from __future__ import annotations

import copy as copy_module
from pathlib import Path
from typing import Any

from PIL import Image

from sdweb.compat.a1111.modules.sd_models import SdModel
from sdweb.compat.a1111.world import WORLD
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.hooks import JobScope, Processing
from sdweb.generation.seeds import plan_seeds, resolve_seed

_OWN = ("sdweb_p", "extra", "all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds", "all_hr_prompts",
        "all_hr_negative_prompts", "styled_prompts", "runner")
_DEFAULTS: dict[str, Any] = {"user": None, "is_api": False, "sampler": None, "cached_c": [None, None],
                             "cached_uc": [None, None], "color_corrections": None, "paste_to": None,
                             "overlay_images": None, "seed_enable_extras": True, "do_not_reload_embeddings": False,
                             "comments": {}, "token_merging_ratio": 0, "sampler_noise_scheduler_override": None,
                             "is_hr_pass": False, "rng": None, "step_multiplier": 1, "modified_noise": None}


def _request_fields(mode: str) -> dict[str, Any]:
    return (Img2ImgRequest if mode == "img2img" else Txt2ImgRequest).model_fields


class StableDiffusionProcessing:
    """A1111's `p`. Built by the compatibility layer around a job, or by a script (`StableDiffusionProcessing
    Txt2Img(prompt=..., steps=...)`), which then runs it with `process_images(p)` inside the current job."""

    mode = "txt2img"

    def __init__(self, **fields: Any) -> None:  # A1111's keyword arguments
        request_fields = _request_fields(self.mode)
        given = {name: value for name, value in fields.items() if name in request_fields}
        if self.mode == "img2img":
            given.setdefault("init_images", fields.get("init_images") or [Image.new("RGB", (8, 8))])
            if fields.get("mask") is not None:
                given["mask"] = fields["mask"]
        request = (Img2ImgRequest if self.mode == "img2img" else Txt2ImgRequest)(**given)
        job = WORLD.job
        scope = job.sdweb_p.scope if job is not None else JobScope(run=_no_job)
        self._attach(Processing(self.mode, request, scope))
        for name, value in fields.items():
            if name not in request_fields and name not in ("sd_model", "mask"):
                self.extra[name] = value

    def _attach(self, sdweb_p: Processing) -> None:
        for name in _OWN:
            object.__setattr__(self, name, None)
        object.__setattr__(self, "sdweb_p", sdweb_p)
        object.__setattr__(self, "extra", {})
        sdweb_p.state["a1111"] = self

    @classmethod
    def wrap(cls, sdweb_p: Processing) -> StableDiffusionProcessing:
        """The façade of a job (one per job: scripts' state set on `p` is shared by every hook)."""
        found = sdweb_p.state.get("a1111")
        if isinstance(found, StableDiffusionProcessing):
            return found
        kind = StableDiffusionProcessingImg2Img if sdweb_p.mode == "img2img" else StableDiffusionProcessingTxt2Img
        facade = object.__new__(kind)
        facade._attach(sdweb_p)
        return facade

    # -- A1111's per-image lists ---------------------------------------------------------------------------------
    def setup_prompts(self) -> None:
        """all_prompts / all_seeds as A1111 has them when scripts' `process` runs (styles applied, seeds fixed)."""
        if self.all_prompts is not None:
            return
        p = self.sdweb_p
        p.fix_seed()
        total = p.n_iter * p.batch_size
        services = WORLD.services
        prompt, negative = (services.apply_styles(p.prompt, p.negative_prompt, list(p.styles or []))
                            if services is not None and p.styles else (p.prompt, p.negative_prompt))
        seeds = plan_seeds(p.seed, p.subseed, p.subseed_strength, total)
        object.__setattr__(self, "all_prompts", [prompt] * total)
        object.__setattr__(self, "all_negative_prompts", [negative] * total)
        object.__setattr__(self, "all_hr_prompts", [prompt] * total)
        object.__setattr__(self, "all_hr_negative_prompts", [negative] * total)
        object.__setattr__(self, "styled_prompts", (prompt, negative))
        object.__setattr__(self, "all_seeds", list(seeds.seeds))
        object.__setattr__(self, "all_subseeds", list(seeds.subseeds))

    def prompts_changed(self) -> bool:
        if self.all_prompts is None:
            return False
        prompt, negative = self.styled_prompts
        return any(text != prompt for text in self.all_prompts) or any(
            text != negative for text in self.all_negative_prompts)

    def batch_prompts(self, batch_number: int) -> tuple[list[str], list[str]]:
        size = self.sdweb_p.batch_size
        start = batch_number * size
        prompts = (self.all_prompts or [])[start:start + size]
        negatives = (self.all_negative_prompts or [])[start:start + size]
        return prompts, negatives

    # -- attributes ----------------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        extra = object.__getattribute__(self, "extra")
        if name in extra:
            return extra[name]
        p = object.__getattribute__(self, "sdweb_p")
        if name in type(p.request).model_fields:
            return getattr(p, name)
        return self._derived(p, name)

    def _derived(self, p: Processing, name: str) -> Any:
        if name == "sd_model":
            return SdModel(p.model) if p.model is not None else None
        if name == "extra_generation_params":
            return p.extra_generation_params
        if name == "image_mask":
            return getattr(p.request, "mask", None)
        if name == "iteration":
            return p.batch_number
        if name in ("outpath_samples", "outpath_grids"):
            return _outpath(p.mode, grids=name == "outpath_grids")
        if name == "scripts":
            return self.runner
        if name == "sd_model_name":
            return p.model.entry.model_name if p.model is not None else None
        if name == "sd_model_hash":
            return p.model.entry.shorthash if p.model is not None else None
        if name in ("prompt_for_display",):
            return None
        if name in _DEFAULTS:
            return _DEFAULTS[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
            return
        p = self.sdweb_p
        if name in type(p.request).model_fields:
            setattr(p, name, value)
        elif name == "image_mask" and p.mode == "img2img":
            p.mask = value
        elif name == "extra_generation_params" and isinstance(value, dict):
            p.extra_generation_params.clear()
            p.extra_generation_params.update(value)
        else:
            self.extra[name] = value

    @property
    def is_img2img(self) -> bool:
        return self.sdweb_p.is_img2img

    def __copy__(self) -> StableDiffusionProcessing:
        """`copy.copy(p)`: an independent job (sdweb's p.copy()) with the façade's own attributes copied."""
        copied = StableDiffusionProcessing.wrap(self.sdweb_p.copy())
        copied.extra.update(self.extra)
        object.__setattr__(copied, "runner", self.runner)
        return copied

    def __deepcopy__(self, memo: dict) -> StableDiffusionProcessing:
        return self.__copy__()

    def close(self) -> None:
        return None

    def get_token_merging_ratio(self, for_hr: bool = False) -> float:
        return 0.0

    def js(self) -> str:
        return ""


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    mode = "txt2img"


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    mode = "img2img"


def _no_job(p: Processing) -> Any:
    raise RuntimeError("process_images(p) runs only while a job is running (from a script's hook or run())")


def _outpath(mode: str, grids: bool) -> str:
    settings, paths = WORLD.settings, WORLD.paths
    key = f"outdir_{mode}_{'grids' if grids else 'samples'}"
    configured = settings.get(key) if settings is not None else None
    base = Path(paths.outputs) if paths is not None else Path("outputs")
    return str(configured or base / (f"{mode}-grids" if grids else f"{mode}-images"))


class Processed:
    """A1111's result object over sdweb's GenerationResult (images and infotexts are the same lists)."""

    def __init__(self, p: StableDiffusionProcessing | None, images_list: list[Image.Image] | None = None,
                 seed: int = -1, info: str = "", subseed: int | None = None, all_prompts: list[str] | None = None,
                 all_negative_prompts: list[str] | None = None, all_seeds: list[int] | None = None,
                 all_subseeds: list[int] | None = None, index_of_first_image: int = 0,
                 infotexts: list[str] | None = None, comments: str = "", result: Any = None) -> None:
        self.result = result
        self.images = images_list if images_list is not None else []
        self.infotexts = infotexts if infotexts is not None else []
        self.prompt = p.prompt if p is not None else ""
        self.negative_prompt = p.negative_prompt if p is not None else ""
        self.seed, self.subseed, self.info, self.comments = seed, subseed, info, comments
        self.all_prompts = all_prompts or []
        self.all_negative_prompts = all_negative_prompts or []
        self.all_seeds = all_seeds or []
        self.all_subseeds = all_subseeds or []
        self.index_of_first_image = index_of_first_image
        self.extra_generation_params = dict(p.extra_generation_params) if p is not None else {}
        for name in ("width", "height", "sampler_name", "cfg_scale", "steps", "batch_size", "styles",
                     "denoising_strength", "restore_faces", "subseed_strength"):
            setattr(self, name, getattr(p, name, None) if p is not None else None)

    @classmethod
    def from_result(cls, p: StableDiffusionProcessing, result: Any) -> Processed:
        grid = 1 if result.grid is not None and result.images and result.images[0] is result.grid else 0
        return cls(p, result.images, result.seeds[0] if result.seeds else -1, result.infotexts[0] if result.infotexts
                   else "", result.subseeds[0] if result.subseeds else None, result.prompts,
                   result.negative_prompts, result.seeds, result.subseeds, grid, result.infotexts, result=result)

    def js(self) -> str:
        import json

        return json.dumps(self.result.info if self.result is not None else {})

    def infotext(self, p: StableDiffusionProcessing, index: int) -> str:
        return self.infotexts[index] if index < len(self.infotexts) else ""


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Run `p` now (inside the current job: a script's run(), or a nested job from a hook)."""
    result = p.sdweb_p.process_images()
    return Processed.from_result(p, result)


def fix_seed(p: StableDiffusionProcessing) -> None:
    p.seed = resolve_seed(p.seed)
    p.subseed = resolve_seed(p.subseed)


def get_fixed_seed(seed: int | None) -> int:
    return resolve_seed(-1 if seed is None or seed == "" else int(seed))


def create_infotext(p: StableDiffusionProcessing, all_prompts: list[str], all_seeds: list[int],
                    all_subseeds: list[int], comments: Any = None, iteration: int = 0, position_in_batch: int = 0,
                    use_main_prompt: bool = False, index: int | None = None,
                    all_negative_prompts: list[str] | None = None) -> str:
    """The infotext A1111 would write for one image of `p` (its A1111 keys; sdweb's writer makes the real one)."""
    from sdweb.infotext import format_infotext

    index = position_in_batch + iteration * p.batch_size if index is None else index
    prompt = p.prompt if use_main_prompt else all_prompts[index]
    negative = (all_negative_prompts or [p.negative_prompt] * (index + 1))[index]
    params = {"Steps": p.steps, "Sampler": p.sampler_name, "CFG scale": p.cfg_scale, "Seed": all_seeds[index],
              "Size": f"{p.width}x{p.height}", **p.extra_generation_params}
    return format_infotext(prompt, negative, params)


def copy_p(p: StableDiffusionProcessing) -> StableDiffusionProcessing:
    return copy_module.copy(p)
