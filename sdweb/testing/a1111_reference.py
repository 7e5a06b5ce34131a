"""A1111's own sampler code as a test-time reference, loaded from a folder outside the repository.

A1111 is AGPL, so none of its code is in sdweb: a developer fetches the files listed in :data:`FILES` (from
AUTOMATIC1111/stable-diffusion-webui at :data:`A1111_COMMIT`, v1.10.1; docs/a1111-reference.md says how) into a
folder and names it in ``SDWEB_A1111_DIR``. :func:`load` executes them with small stand-ins for the rest of
A1111 (``shared`` options, state and model, ``devices``, the prompt parser's batch rebuild, script callbacks and
the preview modules), and :func:`sample` drives A1111's own sampler classes the way its processing does:
``CompVisSampler`` (DDIM, DDIM CFG++, PLMS, UniPC) and ``LCMSampler``, each with A1111's CFG denoiser, over
a stand-in ``sd_model`` whose ``apply_model`` calls the network the caller gives.

k-diffusion (the dev extra) must be installed: A1111's files import it (see :mod:`kdiffusion_reference`).
Loading leaves no trace: the ``modules.*`` entries are taken out of ``sys.modules`` again, and what A1111
patches at import (``k_diffusion.sampling.to_d``, torchsde's seeded ``_randn``) and at sampling
(``k_diffusion.sampling.torch``) is put back.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdweb.testing import kdiffusion_reference

ENV = "SDWEB_A1111_DIR"
A1111_REPOSITORY = "AUTOMATIC1111/stable-diffusion-webui"
A1111_COMMIT = "82a973c04367123ae98bd9abdf80d9eda9b910e2"  # tag v1.10.1
# Loaded in this order (each only needs the stand-ins and the ones before it).
FILES = (
    "modules/torch_utils.py",
    "modules/models/diffusion/uni_pc/uni_pc.py",
    "modules/sd_schedulers.py",
    "modules/sd_samplers_extra.py",
    "modules/sd_samplers_common.py",
    "modules/sd_samplers_cfg_denoiser.py",
    "modules/sd_samplers_kdiffusion.py",
    "modules/sd_samplers_timesteps_impl.py",
    "modules/sd_samplers_timesteps.py",
    "modules/sd_samplers_lcm.py",
)
# A1111 1.10's defaults of the options these files read (modules/shared_options.py).
OPTION_DEFAULTS: dict[str, Any] = {
    "eta_ddim": 0.0, "eta_ancestral": 1.0, "uni_pc_variant": "bh1", "uni_pc_skip_type": "time_uniform",
    "uni_pc_order": 3, "uni_pc_lower_order_final": True, "always_discard_next_to_last_sigma": False,
    "img2img_fix_steps": False, "img2img_extra_noise": 0.0, "skip_early_cond": 0.0, "s_min_uncond_all": False,
    "pad_cond_uncond": False, "pad_cond_uncond_v0": False, "batch_cond_uncond": True,
    "live_preview_content": "Prompt", "live_previews_enable": False, "show_progress_every_n_steps": 10,
    "refiner_switch_by_sample_steps": False, "enable_quantization": False,
    "use_old_karras_scheduler_sigmas": False, "sigma_min": 0.0, "sigma_max": 0.0, "rho": 0.0,
    "beta_dist_alpha": 0.6, "beta_dist_beta": 0.6, "sgm_noise_multiplier": False,
    "no_dpmpp_sde_batch_determinism": False, "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0,
}
# Network call of the stand-in sd_model: (x, t, text embeddings, pooled embeddings or None) -> eps.
UNetFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def folder() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def unavailable_reason() -> str | None:
    """Why the reference cannot run here (a sentence for pytest's skip), or None when it can."""
    root = folder()
    if root is None:
        return (f"{ENV} is not set: A1111's sampler files are a test-time reference kept outside the repository "
                f"(docs/a1111-reference.md says how to fetch them)")
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        return f"{ENV}={root} lacks {', '.join(missing)} (docs/a1111-reference.md lists the files)"
    if not kdiffusion_reference.available():
        return "k-diffusion (dev extra) missing: A1111's sampler files import it"
    return None


# ------------------------------------------------------------------------------------------------ stand-ins

class _Options(types.SimpleNamespace):
    """modules.shared.opts: attribute access only; an option A1111 reads that is not here raises."""


@dataclass
class _State:
    interrupted: bool = False
    skipped: bool = False
    sampling_step: int = 0
    sampling_steps: int = 0
    current_latent: Any = None


class _Tqdm:
    def update(self) -> None:
        pass


class _DictWithShape(dict):
    """prompt_parser.DictWithShape: SDXL conditioning ({"crossattn", "vector"}) with the cross-attention shape."""

    @property
    def shape(self) -> torch.Size:
        return self["crossattn"].shape


@dataclass
class _DenoiserParams:  # script_callbacks.CFGDenoiserParams
    x: torch.Tensor
    image_cond: torch.Tensor
    sigma: torch.Tensor
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None


@dataclass
class _DenoisedParams:  # script_callbacks.CFGDenoisedParams
    x: torch.Tensor
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any


@dataclass
class _AfterCFGParams:  # script_callbacks.AfterCFGCallbackParams
    x: torch.Tensor
    sampling_step: int
    total_sampling_steps: int


@dataclass
class _ExtraNoiseParams:  # script_callbacks.ExtraNoiseParams
    noise: torch.Tensor
    x: torch.Tensor
    xi: torch.Tensor


def _no_callback(params: Any) -> None:
    pass


class StandInModel:
    """What A1111's samplers read from ``shared.sd_model``: the noise table, the parameterization, the
    conditioning keys, and ``apply_model(x, t, cond)`` with cond as the CFG denoiser builds it."""

    def __init__(self, unet: UNetFn, alphas_cumprod: torch.Tensor, is_sdxl: bool, v_prediction: bool) -> None:
        self.unet = unet
        self.alphas_cumprod = alphas_cumprod
        self.is_sdxl = is_sdxl
        self.parameterization = "v" if v_prediction else "eps"
        self.device = torch.device("cpu")
        self.cond_stage_key = "txt"
        self.model = types.SimpleNamespace(conditioning_key="crossattn")
        self.sd_checkpoint_info = None

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: Mapping[str, Any]) -> torch.Tensor:
        if "crossattn" in cond:  # SDXL: {"crossattn", "vector", "c_concat"}
            return self.unet(x, t, cond["crossattn"], cond["vector"])
        return self.unet(x, t, cond["c_crossattn"][0], None)


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _stand_ins(opts: _Options, state: _State) -> dict[str, types.ModuleType]:
    shared = _module("modules.shared", opts=opts, state=state, sd_model=None, total_tqdm=_Tqdm(),
                     parallel_processing_allowed=True)
    prompt_parser = _module("modules.prompt_parser", DictWithShape=_DictWithShape,
                            reconstruct_multicond_batch=lambda cond, step: cond,
                            reconstruct_cond_batch=lambda uncond, step: uncond)
    callbacks = _module("modules.script_callbacks", CFGDenoiserParams=_DenoiserParams,
                        CFGDenoisedParams=_DenoisedParams, AfterCFGCallbackParams=_AfterCFGParams,
                        ExtraNoiseParams=_ExtraNoiseParams, cfg_denoiser_callback=_no_callback,
                        cfg_denoised_callback=_no_callback, cfg_after_cfg_callback=_no_callback,
                        extra_noise_callback=_no_callback)
    cpu = torch.device("cpu")
    devices = _module("modules.devices", device=cpu, cpu=cpu, dtype=torch.float32)
    empty = {name: _module(f"modules.{name}") for name in ("images", "sd_vae_approx", "sd_samplers",
                                                            "sd_vae_taesd", "sd_models")}
    packages = {name: _module(name, __path__=[]) for name in ("modules", "modules.models",
                                                              "modules.models.diffusion",
                                                              "modules.models.diffusion.uni_pc")}
    return {**packages, "modules.shared": shared, "modules.prompt_parser": prompt_parser,
            "modules.script_callbacks": callbacks, "modules.devices": devices,
            **{f"modules.{name}": module for name, module in empty.items()}}


# ------------------------------------------------------------------------------------------------- loading

@dataclass
class A1111:
    """A1111's loaded sampler modules (by file stem) and the stand-in options and state they read."""

    modules: dict[str, types.ModuleType]
    opts: _Options
    state: _State
    shared: types.ModuleType
    sampling: types.ModuleType  # k_diffusion.sampling, which A1111's samplers draw their noise through
    samplers: dict[str, Any] = field(default_factory=dict)  # name -> SamplerData


_LOADED: A1111 | None = None


def load() -> A1111:
    """Execute A1111's files (once per process) with the stand-ins; see the module docstring."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    root = folder()
    assert root is not None
    sampling, _ = kdiffusion_reference.load()
    opts, state = _Options(**OPTION_DEFAULTS), _State()
    stand_ins = _stand_ins(opts, state)
    before = {name: module for name, module in sys.modules.items() if name == "modules" or name.startswith("modules.")}
    sampling_attributes = dict(vars(sampling))
    import torchsde._brownian.brownian_interval as brownian_interval

    seeded_randn = brownian_interval._randn
    loaded: dict[str, types.ModuleType] = {}
    try:
        sys.modules.update(stand_ins)
        for relative in FILES:
            name = relative.removesuffix(".py").replace("/", ".")
            module = _exec_file(name, root / relative)
            parent, _, stem = name.rpartition(".")
            setattr(sys.modules[parent], stem, module)
            loaded[stem] = module
    finally:
        for name in [name for name in sys.modules if name == "modules" or name.startswith("modules.")]:
            del sys.modules[name]
        sys.modules.update(before)
        vars(sampling).clear()
        vars(sampling).update(sampling_attributes)
        brownian_interval._randn = seeded_randn
    reference = A1111(loaded, opts, state, stand_ins["modules.shared"], sampling)
    for data in loaded["sd_samplers_timesteps"].samplers_data_timesteps + loaded["sd_samplers_lcm"].samplers_data_lcm:
        reference.samplers[data.name] = data
    _LOADED = reference
    return reference


def _exec_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ sampling

@dataclass
class Prompt:
    """One prompt's conditioning for every image of the batch: text embeddings (1, tokens, dim) and, for
    SDXL, pooled embeddings (1, dim)."""

    cond: torch.Tensor
    uncond: torch.Tensor
    cond_pooled: torch.Tensor | None = None
    uncond_pooled: torch.Tensor | None = None

    def batch(self, size: int) -> tuple[Any, Any]:
        """(conditioning as reconstruct_multicond_batch returns it, unconditional conditioning)."""
        conds_list = [[(i, 1.0)] for i in range(size)]
        if self.cond_pooled is None:
            return (conds_list, self.cond.repeat(size, 1, 1)), self.uncond.repeat(size, 1, 1)
        cond = _DictWithShape(crossattn=self.cond.repeat(size, 1, 1), vector=self.cond_pooled.repeat(size, 1))
        uncond = _DictWithShape(crossattn=self.uncond.repeat(size, 1, 1), vector=self.uncond_pooled.repeat(size, 1))
        return (conds_list, cond), uncond


@dataclass
class Job:
    """One A1111 generation pass. ``next_noise`` is the batch's ImageRNG.next (first call: the initial noise,
    later calls: the samplers' noise). With ``init_latent`` it is img2img at ``denoising_strength``; ``hires``
    runs exactly ``steps`` steps (A1111's hires pass)."""

    sampler: str
    steps: int
    cfg_scale: float
    model: StandInModel
    prompt: Prompt
    batch: int
    next_noise: Callable[[], torch.Tensor]
    scheduler: str = "Automatic"
    eta: float | None = None
    init_latent: torch.Tensor | None = None
    denoising_strength: float = 0.0
    hires: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


class _Noise:
    def __init__(self, next_noise: Callable[[], torch.Tensor]) -> None:
        self.next = next_noise


def _processing(job: Job) -> types.SimpleNamespace:
    """The fields of A1111's StableDiffusionProcessing that its samplers read (no mask: no inpainting)."""
    return types.SimpleNamespace(
        sampler_name=job.sampler, steps=job.steps, cfg_scale=job.cfg_scale, eta=job.eta,
        denoising_strength=job.denoising_strength, scheduler=job.scheduler, hr_scheduler=job.scheduler,
        is_hr_pass=job.hires, sampler_noise_scheduler_override=None, extra_generation_params={},
        rng=_Noise(job.next_noise), scripts=None, refiner_switch_at=None, refiner_checkpoint_info=None,
        s_churn=0.0, s_tmin=0.0, s_tmax=None, s_noise=1.0, s_min_uncond=0.0, iteration=0, batch_size=job.batch)


@contextmanager
def _options(reference: A1111, values: Mapping[str, Any]) -> Iterator[None]:
    unknown = sorted(set(values) - set(OPTION_DEFAULTS))
    if unknown:
        raise KeyError(f"not an option the reference knows: {', '.join(unknown)}")
    saved = dict(vars(reference.opts))
    vars(reference.opts).update(values)
    try:
        yield
    finally:
        vars(reference.opts).clear()
        vars(reference.opts).update(saved)


def sample(job: Job) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run the pass with A1111's sampler: (final latents, the infotext keys it added)."""
    reference = load()
    data = reference.samplers[job.sampler]
    p = _processing(job)
    torch_before = reference.sampling.torch
    reference.shared.sd_model = job.model
    reference.state.interrupted = reference.state.skipped = False
    try:
        with _options(reference, job.options), torch.no_grad():
            sampler = data.constructor(job.model)
            sampler.config = data
            cond, uncond = job.prompt.batch(job.batch)
            noise = job.next_noise()
            image_cond = noise.new_zeros(job.batch, 5, 1, 1)
            if job.init_latent is None:
                latents = sampler.sample(p, noise, cond, uncond, image_conditioning=image_cond)
            else:
                latents = sampler.sample_img2img(p, job.init_latent, noise, cond, uncond,
                                                 steps=job.steps if job.hires else None, image_conditioning=image_cond)
    finally:
        reference.sampling.torch = torch_before  # Sampler.initialize installs its TorchHijack there
        reference.shared.sd_model = None
    return latents, p.extra_generation_params
