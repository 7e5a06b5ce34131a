"""One sampling run with A1111's rules (its KDiffusionSampler / CompVisSampler ``sample`` and
``sample_img2img``): the sigma or timestep schedule, the start noise, the img2img cut of the schedule, the
Brownian trees, eta, and the infotext keys the sampler adds. Model-agnostic: the network is reached through a
:class:`ModelCall`, the noise through an :class:`ImageRNG`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from sdweb.samplers import dpm_solver, kdiffusion, restart, timestep_samplers, unipc
from sdweb.samplers.context import SamplerContext, StepState
from sdweb.samplers.denoisers import (
    CFGDenoiser,
    CompVisDenoiser,
    LCMDenoiser,
    MaskBlend,
    ModelCall,
    TimestepEpsDenoiser,
    UncondSkip,
)
from sdweb.samplers.discrete import DiscreteSchedule
from sdweb.samplers.flow import ANCESTRAL_RF, FlowDenoiser, FlowSchedule, noised_start, stretched_to_terminal
from sdweb.samplers.resolve import effective_schedule
from sdweb.samplers.rng import ImageRNG
from sdweb.samplers.schedules import ScheduleOptions, discard_penultimate, schedule_sigmas
from sdweb.samplers.table import SamplerInfo, SchedulerInfo

SIGMA_FUNCTIONS: dict[str, Callable[[SamplerContext, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "sample_euler": kdiffusion.sample_euler,
    "sample_euler_ancestral": kdiffusion.sample_euler_ancestral,
    "sample_heun": kdiffusion.sample_heun,
    "sample_dpm_2": kdiffusion.sample_dpm_2,
    "sample_dpm_2_ancestral": kdiffusion.sample_dpm_2_ancestral,
    "sample_lms": kdiffusion.sample_lms,
    "sample_dpmpp_2s_ancestral": kdiffusion.sample_dpmpp_2s_ancestral,
    "sample_dpmpp_sde": kdiffusion.sample_dpmpp_sde,
    "sample_dpmpp_2m": kdiffusion.sample_dpmpp_2m,
    "sample_dpmpp_2m_sde": kdiffusion.sample_dpmpp_2m_sde,
    "sample_dpmpp_3m_sde": kdiffusion.sample_dpmpp_3m_sde,
    "sample_dpm_fast": dpm_solver.sample_dpm_fast,
    "sample_dpm_adaptive": dpm_solver.sample_dpm_adaptive,
    "sample_restart": restart.sample_restart,
    "sample_lcm": kdiffusion.sample_lcm,
}
TIMESTEP_FUNCTIONS = {"ddim": timestep_samplers.sample_ddim, "ddim_cfgpp": timestep_samplers.sample_ddim_cfgpp,
                      "plms": timestep_samplers.sample_plms}
_CHURN = frozenset({"sample_euler", "sample_heun", "sample_dpm_2"})
# The functions with an s_noise parameter (A1111 passes its setting to each of them).
_S_NOISE = _CHURN | {"sample_euler_ancestral", "sample_dpm_fast", "sample_dpm_adaptive", "sample_dpm_2_ancestral",
                     "sample_dpmpp_2s_ancestral", "sample_dpmpp_sde", "sample_dpmpp_2m_sde", "sample_dpmpp_3m_sde",
                     "sample_restart"}
_RANGE = frozenset({"sample_dpm_fast", "sample_dpm_adaptive"})


@dataclass(frozen=True)
class SamplerSettings:
    """The sampler settings A1111 reads from its options (a1111.md §5, "Sampler parameters")."""

    eta_ancestral: float = 1.0
    eta_ddim: float = 0.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = 0.0  # 0 = infinity
    s_noise: float = 1.0
    s_min_uncond: float = 0.0  # NGMS: skip the negative prompt below this sigma (every other evaluation)
    s_min_uncond_all: bool = False  # NGMS on every evaluation
    skip_early_cond: float = 0.0  # skip the negative prompt for this fraction of the first evaluations
    sgm_noise_multiplier: bool = False  # txt2img start noise scaled by sqrt(1 + sigma_max^2), as SDXL's own code
    sigma_min: float = 0.0
    sigma_max: float = 0.0
    rho: float = 0.0
    always_discard_next_to_last_sigma: bool = False
    beta_dist_alpha: float = 0.6
    beta_dist_beta: float = 0.6
    uni_pc_variant: str = "bh1"
    uni_pc_skip_type: str = "time_uniform"
    uni_pc_order: int = 3
    uni_pc_lower_order_final: bool = True
    img2img_fix_steps: bool = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SamplerSettings:
        values = {}
        for name, default in cls().__dict__.items():
            raw = settings.get(name, default)
            values[name] = type(default)(raw) if raw is not None else default
        return cls(**values)


@dataclass
class SamplingPlan:
    """What one pass samples: the sampler and schedule, steps, and for img2img the denoising strength."""

    sampler: SamplerInfo
    schedule: SchedulerInfo
    steps: int
    cfg_scale: float
    eta: float | None = None  # the request's; None = the setting
    denoising_strength: float | None = None  # img2img / hires: sample from a partly noised init latent
    exact_steps: bool = False  # hires pass: run exactly `steps` steps whatever the strength
    noise_multiplier: float = 1.0  # img2img: setting initial_noise_multiplier (scales the initial noise)
    is_sdxl: bool = False
    v_prediction: bool = False
    flow: bool = False  # a flow-matching model: velocity output, noise on the (1 - sigma, sigma) line
    renorm_patch: int = 0  # flow: Qwen-Image's true CFG, per patch x patch token (samplers.denoisers.renormed)
    settings: SamplerSettings = field(default_factory=SamplerSettings)


@dataclass
class SamplingOutcome:
    latents: torch.Tensor
    params: dict[str, Any]  # infotext keys the sampler adds (Eta, Schedule min sigma, ...)
    total_steps: int  # the steps the progress counts


def img2img_steps(plan: SamplingPlan) -> tuple[int, int]:
    """A1111's setup_img2img_steps: (schedule steps, t_enc); t_enc + 1 steps run."""
    strength = float(plan.denoising_strength or 0.0)
    if plan.exact_steps or plan.settings.img2img_fix_steps:
        steps = int(plan.steps / min(strength, 0.999)) if strength > 0 else 0
        return steps, plan.steps - 1
    return plan.steps, int(min(strength, 0.999) * plan.steps)


def _eta(plan: SamplingPlan, params: dict[str, Any]) -> float:
    timestep = plan.sampler.is_timestep_sampler
    default = plan.settings.eta_ddim if timestep else plan.settings.eta_ancestral
    eta = plan.eta if plan.eta is not None else default
    if plan.sampler.eta_default is not None and eta != (0.0 if timestep else 1.0):
        params["Eta DDIM" if timestep else "Eta"] = eta
    return eta


def get_sigmas(plan: SamplingPlan, discrete: DiscreteSchedule, steps: int, params: dict[str, Any]) -> torch.Tensor:
    """A1111's get_sigmas: the schedule actually used ("Automatic" resolved), next-to-last dropped where needed."""
    settings = plan.settings
    discard = plan.sampler.discard_penultimate_sigma
    if settings.always_discard_next_to_last_sigma and not discard:
        discard = True
        params["Discard penultimate sigma"] = True
    steps += 1 if discard else 0
    used = effective_schedule(plan.sampler, plan.schedule)
    if used is None:
        sigmas = discrete.to("cpu").get_sigmas(steps)
    else:
        options = ScheduleOptions(is_sdxl=plan.is_sdxl, beta_alpha=settings.beta_dist_alpha,
                                  beta_beta=settings.beta_dist_beta)
        if settings.sigma_min and settings.sigma_min != float(discrete.sigma_min):
            options = replace(options, sigma_min=settings.sigma_min)
            params["Schedule min sigma"] = settings.sigma_min
        if settings.sigma_max and settings.sigma_max != float(discrete.sigma_max):
            options = replace(options, sigma_max=settings.sigma_max)
            params["Schedule max sigma"] = settings.sigma_max
        if used.default_rho != -1 and settings.rho:
            options = replace(options, rho=settings.rho)
            params["Schedule rho"] = settings.rho
        if used.name == "beta":
            params["Beta schedule alpha"] = settings.beta_dist_alpha
            params["Beta schedule beta"] = settings.beta_dist_beta
        sigmas = schedule_sigmas(used.name, discrete, steps, options)
    if isinstance(discrete, FlowSchedule) and discrete.terminal:
        sigmas = stretched_to_terminal(sigmas, discrete.terminal)
    return discard_penultimate(sigmas) if discard else sigmas


def _context(plan: SamplingPlan, denoiser: CFGDenoiser, rng: ImageRNG, eta: float,
             callback: Callable[[StepState], None] | None, params: dict[str, Any]) -> SamplerContext:
    function = plan.sampler.function
    settings = plan.settings
    ctx = SamplerContext(model=denoiser, randn_like=lambda x: rng.next(), callback=callback, eta=eta)
    if function in _CHURN:  # infotext keys as A1111 writes them: only what the function takes, when not default
        ctx.s_churn, ctx.s_tmin = settings.s_churn, settings.s_tmin
        ctx.s_tmax = settings.s_tmax or float("inf")
        for key, value, default in (("Sigma churn", ctx.s_churn, 0.0), ("Sigma tmin", ctx.s_tmin, 0.0),
                                    ("Sigma tmax", ctx.s_tmax, float("inf"))):
            if value != default:
                params[key] = value
    if function in _S_NOISE:
        ctx.s_noise = settings.s_noise
        if ctx.s_noise != 1.0:
            params["Sigma noise"] = ctx.s_noise
    if plan.sampler.solver_type:
        ctx.solver_type = plan.sampler.solver_type
    return ctx


def _inner(plan: SamplingPlan, model: ModelCall, discrete: DiscreteSchedule) -> Any:
    if plan.flow:
        return FlowDenoiser(model)
    if plan.sampler.is_timestep_sampler:
        return TimestepEpsDenoiser(model, discrete.alphas_cumprod, plan.v_prediction)
    if plan.sampler.function == "sample_lcm":
        return LCMDenoiser(model, discrete.alphas_cumprod, plan.v_prediction)
    return CompVisDenoiser(model, discrete, plan.v_prediction)


def sample(plan: SamplingPlan, model: ModelCall, discrete: DiscreteSchedule, rng: ImageRNG, seeds: list[int], *,
           init_latent: torch.Tensor | None = None, blend: MaskBlend | None = None,
           callback: Callable[[StepState], None] | None = None) -> SamplingOutcome:
    """Sample one batch: txt2img from noise, or img2img from ``init_latent`` with ``plan.denoising_strength``.

    ``seeds`` are the batch's image seeds (one Brownian tree each); ``blend`` keeps the unmasked part of the
    init latent (inpainting with a normal model); ``callback`` sees every step (progress, previews, interrupt)."""
    params: dict[str, Any] = {}
    eta = _eta(plan, params)
    inner = _inner(plan, model, discrete)
    if blend is not None and plan.sampler.is_timestep_sampler:
        blend = replace(blend, before_denoising=True)
    settings = plan.settings
    skip = UncondSkip(min_sigma=settings.s_min_uncond, every_step=settings.s_min_uncond_all,
                      skip_early=settings.skip_early_cond, total=_expected_evaluations(plan), params=params)
    denoiser = CFGDenoiser(inner, model, plan.cfg_scale, blend, skip, plan.renorm_patch if plan.flow else 0)
    ctx = _context(plan, denoiser, rng, eta, callback, params)
    noise = rng.next()
    if plan.noise_multiplier != 1.0:
        noise = noise * plan.noise_multiplier
        params["Noise multiplier"] = plan.noise_multiplier
    if plan.sampler.is_timestep_sampler:
        latents, total = _sample_timesteps(plan, ctx, discrete, noise, init_latent, params)
    else:
        # LCM: A1111 takes the schedule and its sigma range from the LCM wrapper's 50-timestep table
        table = inner.schedule if isinstance(inner, LCMDenoiser) else discrete
        latents, total = _sample_sigmas(plan, ctx, table, noise, init_latent, seeds, params)
    return SamplingOutcome(latents, params, total)


def _expected_evaluations(plan: SamplingPlan) -> int:
    """A1111's total_steps of the CFG denoiser: the steps, doubled for second-order samplers."""
    steps = img2img_steps(plan)[0] if plan.denoising_strength is not None else plan.steps
    return max(1, steps * (2 if plan.sampler.second_order else 1))


def _brownian(plan: SamplingPlan, x: torch.Tensor, sigmas: torch.Tensor, seeds: list[int]) -> Any:
    if not plan.sampler.brownian_noise:
        return None
    sigma_min, sigma_max = kdiffusion.sigma_bounds(sigmas)
    return kdiffusion.BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seeds)


def _sample_sigmas(plan: SamplingPlan, ctx: SamplerContext, discrete: DiscreteSchedule, noise: torch.Tensor,
                   init_latent: torch.Tensor | None, seeds: list[int], params: dict[str, Any]) -> tuple:
    function = SIGMA_FUNCTIONS[plan.sampler.function]
    if plan.flow:
        function = ANCESTRAL_RF.get(plan.sampler.function, function)
    if init_latent is None:
        sigmas = get_sigmas(plan, discrete, plan.steps, params)
        if plan.settings.sgm_noise_multiplier:
            params["SGM noise multiplier"] = True
            x = noise * torch.sqrt(1.0 + sigmas[0] ** 2.0)
        else:
            x = noise * sigmas[0]
        ctx.sigma_range = (float(discrete.sigma_min), float(discrete.sigma_max))
        ctx.steps = plan.steps
        ctx.noise_sampler = _brownian(plan, x, sigmas, seeds)
        return function(ctx, x, sigmas), plan.steps
    steps, t_enc = img2img_steps(plan)
    sigmas = get_sigmas(plan, discrete, steps, params)
    sigma_sched = sigmas[steps - t_enc - 1:]
    x = noised_start(init_latent, noise, sigma_sched[0]) if plan.flow else init_latent + noise * sigma_sched[0]
    ctx.sigma_range = (float(sigma_sched[-2]), float(sigma_sched[0]))
    ctx.steps = len(sigma_sched) - 1
    ctx.noise_sampler = _brownian(plan, init_latent, sigmas, seeds)
    return function(ctx, x, sigma_sched), t_enc + 1


def _timesteps(plan: SamplingPlan, steps: int, params: dict[str, Any]) -> torch.Tensor:
    discard = plan.sampler.discard_penultimate_sigma
    if plan.settings.always_discard_next_to_last_sigma and not discard:
        discard = True
        params["Discard penultimate sigma"] = True
    return timestep_samplers.ddim_timesteps(steps + (1 if discard else 0))


def _sample_timesteps(plan: SamplingPlan, ctx: SamplerContext, discrete: DiscreteSchedule, noise: torch.Tensor,
                      init_latent: torch.Tensor | None, params: dict[str, Any]) -> tuple:
    alphas_cumprod = discrete.alphas_cumprod.to(noise.device)
    if init_latent is None:
        timesteps = _timesteps(plan, plan.steps, params)
        x, t_start, total = noise, None, plan.steps
    else:
        steps, t_enc = img2img_steps(plan)
        full = _timesteps(plan, steps, params)
        timesteps = full[:t_enc]
        a = alphas_cumprod[full[t_enc]]
        x = init_latent * torch.sqrt(a) + noise * torch.sqrt(1 - a)
        # one hires step: t_enc 0 leaves no timestep to walk (A1111's loop runs none; x stays the noised latent)
        # A1111's img2img start time, in float32 as it computes it (timesteps[-1] / 1000 + 1 / 1000 on a tensor)
        t_start = float(timesteps[-1] / 1000 + 1 / 1000) if len(timesteps) else None
        total = t_enc + 1
    timesteps = timesteps.to(noise.device)
    if plan.sampler.function == "unipc":
        settings = plan.settings
        return unipc.sample_unipc(ctx, x, len(timesteps), alphas_cumprod, t_start=t_start,
                                  order=settings.uni_pc_order, variant=settings.uni_pc_variant,
                                  skip_type=settings.uni_pc_skip_type,
                                  lower_order_final=settings.uni_pc_lower_order_final), total
    return TIMESTEP_FUNCTIONS[plan.sampler.function](ctx, x, timesteps, alphas_cumprod), total
