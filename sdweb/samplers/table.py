"""A1111's samplers and schedule types as data, with the diffusers scheduler each one runs on.

Order is A1111's UI order (``SAMPLERS[0]`` "DPM++ 2M" is the UI default; ``SCHEDULERS[0]`` is
"Automatic"). The names, aliases and flags are what /sdapi/v1/samplers and /sdapi/v1/schedulers
report; ``scheduler_class`` and ``options`` are how :mod:`sdweb.samplers.build` makes a diffusers
scheduler. Noise comes from diffusers (seeded generators), never bit-identical to A1111's
k-diffusion loop, so ``exact`` speaks about the algorithm and the sigma schedule only.

Samplers without a diffusers counterpart (DPM fast, DPM adaptive, Restart, DDIM CFG++) stay listed
and resolvable, because A1111 clients and scripts send these names: ``available`` is False and they
run on the nearest class, with ``note`` recorded by the caller (log / infotext) instead of a 4xx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Settings A1111 falls back to when a request has no eta (opts eta_ancestral / eta_ddim).
ETA_ANCESTRAL_DEFAULT = 1.0
ETA_DDIM_DEFAULT = 0.0


@dataclass(frozen=True)
class SamplerInfo:
    """One entry of A1111's "Sampling method" list and how it maps onto diffusers."""

    name: str
    aliases: tuple[str, ...]
    scheduler_class: str
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    default_schedule: str | None = None  # scheduler name "Automatic" resolves to; None = model's own
    second_order: bool = False
    uses_ensd: bool = False
    brownian_noise: bool = False
    discard_penultimate_sigma: bool = False
    is_timestep_sampler: bool = False  # DDIM/PLMS/UniPC: A1111 ignores the Schedule type
    solver_type: str | None = None  # only reported in the API options ("heun")
    eta_default: float | None = None  # None: eta does not apply to this sampler
    exact: bool = True
    available: bool = True
    note: str = ""

    def api_options(self) -> dict[str, str]:
        """The ``options`` object of /sdapi/v1/samplers, values stringified as A1111's pydantic does."""
        raw: list[tuple[str, object]] = [
            ("scheduler", self.default_schedule),
            ("discard_next_to_last_sigma", self.discard_penultimate_sigma or None),
            ("uses_ensd", self.uses_ensd or None),
            ("second_order", self.second_order or None),
            ("brownian_noise", self.brownian_noise or None),
            ("solver_type", self.solver_type),
        ]
        return {key: str(value) for key, value in raw if value is not None}


@dataclass(frozen=True)
class SchedulerInfo:
    """One entry of A1111's "Schedule type" list."""

    name: str
    label: str
    aliases: tuple[str, ...] | None = None
    default_rho: float = -1.0  # A1111's placeholder for "no rho"
    need_inner_model: bool = False


_DPM_MULTI = "DPMSolverMultistepScheduler"
_DPM_SINGLE = "DPMSolverSinglestepScheduler"
_DPM_MULTI_SDE = {"algorithm_type": "sde-dpmsolver++", "final_sigmas_type": "zero", "lower_order_final": True}
_DDIM_TIMESTEPS = {"timestep_spacing": "leading", "steps_offset": 1}

SAMPLERS: tuple[SamplerInfo, ...] = (
    SamplerInfo(
        "DPM++ 2M", ("k_dpmpp_2m",), _DPM_MULTI,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint",
         "final_sigmas_type": "zero", "lower_order_final": True},
        default_schedule="karras",
    ),
    SamplerInfo(
        "DPM++ SDE", ("k_dpmpp_sde",), "DPMSolverSDEScheduler",
        default_schedule="karras", second_order=True, brownian_noise=True,
        eta_default=ETA_ANCESTRAL_DEFAULT,
    ),
    SamplerInfo(
        "DPM++ 2M SDE", ("k_dpmpp_2m_sde",), _DPM_MULTI,
        {**_DPM_MULTI_SDE, "solver_order": 2, "solver_type": "midpoint"},
        default_schedule="exponential", brownian_noise=True, eta_default=ETA_ANCESTRAL_DEFAULT,
        note="SDE noise is drawn per step from the generator, not from a Brownian tree.",
    ),
    SamplerInfo(
        "DPM++ 2M SDE Heun", ("k_dpmpp_2m_sde_heun",), _DPM_MULTI,
        {**_DPM_MULTI_SDE, "solver_order": 2, "solver_type": "heun"},
        default_schedule="exponential", brownian_noise=True, solver_type="heun",
        eta_default=ETA_ANCESTRAL_DEFAULT,
        note="SDE noise is drawn per step from the generator, not from a Brownian tree.",
    ),
    SamplerInfo(
        "DPM++ 2S a", ("k_dpmpp_2s_a",), _DPM_SINGLE,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero",
         "lower_order_final": True},
        default_schedule="karras", uses_ensd=True, second_order=True, eta_default=ETA_ANCESTRAL_DEFAULT,
        exact=False,
        note="DPM++ 2S a approximated by DPMSolverSinglestepScheduler (order 2), which is not ancestral.",
    ),
    SamplerInfo(
        "DPM++ 3M SDE", ("k_dpmpp_3m_sde",), _DPM_MULTI,
        {**_DPM_MULTI_SDE, "solver_order": 3, "solver_type": "midpoint"},
        default_schedule="exponential", discard_penultimate_sigma=True, brownian_noise=True,
        eta_default=ETA_ANCESTRAL_DEFAULT, exact=False,
        note="DPM++ 3M SDE approximated by DPMSolverMultistepScheduler's third-order SDE update "
        "(noise per step, not a Brownian tree); with Karras, Exponential or Beta schedules the "
        "next-to-last sigma A1111 drops is kept.",
    ),
    SamplerInfo(
        "Euler a", ("k_euler_a", "k_euler_ancestral"), "EulerAncestralDiscreteScheduler",
        uses_ensd=True, eta_default=ETA_ANCESTRAL_DEFAULT,
    ),
    SamplerInfo("Euler", ("k_euler",), "EulerDiscreteScheduler"),
    SamplerInfo("LMS", ("k_lms",), "LMSDiscreteScheduler"),
    SamplerInfo("Heun", ("k_heun",), "HeunDiscreteScheduler", second_order=True),
    SamplerInfo(
        "DPM2", ("k_dpm_2",), "KDPM2DiscreteScheduler",
        default_schedule="karras", discard_penultimate_sigma=True, second_order=True, exact=False,
        note="DPM2 runs on KDPM2DiscreteScheduler, which keeps the next-to-last sigma A1111 drops.",
    ),
    SamplerInfo(
        "DPM2 a", ("k_dpm_2_a",), "KDPM2AncestralDiscreteScheduler",
        default_schedule="karras", discard_penultimate_sigma=True, uses_ensd=True, second_order=True,
        eta_default=ETA_ANCESTRAL_DEFAULT, exact=False,
        note="DPM2 a runs on KDPM2AncestralDiscreteScheduler, which keeps the next-to-last sigma A1111 drops.",
    ),
    SamplerInfo(
        "DPM fast", ("k_dpm_fast",), _DPM_SINGLE,
        {"algorithm_type": "dpmsolver++", "solver_order": 3, "final_sigmas_type": "zero",
         "lower_order_final": True},
        uses_ensd=True, eta_default=ETA_ANCESTRAL_DEFAULT, exact=False, available=False,
        note="DPM fast has no diffusers scheduler; approximated by DPMSolverSinglestepScheduler (order 3).",
    ),
    SamplerInfo(
        "DPM adaptive", ("k_dpm_ad",), _DPM_SINGLE,
        {"algorithm_type": "dpmsolver++", "solver_order": 3, "final_sigmas_type": "zero",
         "lower_order_final": True},
        uses_ensd=True, eta_default=ETA_ANCESTRAL_DEFAULT, exact=False, available=False,
        note="DPM adaptive has no diffusers scheduler; approximated by DPMSolverSinglestepScheduler "
        "(order 3) with a fixed step count.",
    ),
    SamplerInfo(
        "Restart", ("restart",), "HeunDiscreteScheduler",
        default_schedule="karras", second_order=True, exact=False, available=False,
        note="Restart has no diffusers scheduler; approximated by HeunDiscreteScheduler without restarts.",
    ),
    SamplerInfo(
        "DDIM", ("ddim",), "DDIMScheduler",
        {**_DDIM_TIMESTEPS, "clip_sample": False, "set_alpha_to_one": False},
        is_timestep_sampler=True, eta_default=ETA_DDIM_DEFAULT,
    ),
    SamplerInfo(
        "DDIM CFG++", ("ddim_cfgpp",), "DDIMScheduler",
        {**_DDIM_TIMESTEPS, "clip_sample": False, "set_alpha_to_one": False},
        is_timestep_sampler=True, eta_default=ETA_DDIM_DEFAULT, exact=False, available=False,
        note="DDIM CFG++ has no diffusers counterpart; runs as plain DDIM with ordinary CFG.",
    ),
    SamplerInfo(
        "PLMS", ("plms",), "PNDMScheduler",
        {**_DDIM_TIMESTEPS, "skip_prk_steps": True, "set_alpha_to_one": False},
        is_timestep_sampler=True,
    ),
    SamplerInfo(
        # A1111 defaults: uni_pc_variant bh1, uni_pc_order 3, skip type time_uniform, lower order final.
        # A1111's UniPC stops at the last timestep, never at sigma 0; with bh1 a final sigma of 0 gives
        # NaN in diffusers (log-SNR goes to infinity), so end at sigma_min.
        "UniPC", ("unipc",), "UniPCMultistepScheduler",
        {"solver_type": "bh1", "solver_order": 3, "predict_x0": True, "lower_order_final": True,
         "timestep_spacing": "linspace", "final_sigmas_type": "sigma_min"},
        is_timestep_sampler=True,
    ),
    SamplerInfo(
        "LCM", ("k_lcm",), "LCMScheduler", exact=False,
        note="LCM runs on LCMScheduler; with Automatic it keeps diffusers' LCM timesteps (up to 50 steps) "
        "instead of the model's uniform sigmas A1111 uses.",
    ),
)

SCHEDULERS: tuple[SchedulerInfo, ...] = (
    SchedulerInfo("automatic", "Automatic"),
    SchedulerInfo("uniform", "Uniform", need_inner_model=True),
    SchedulerInfo("karras", "Karras", default_rho=7.0),
    SchedulerInfo("exponential", "Exponential"),
    SchedulerInfo("polyexponential", "Polyexponential", default_rho=1.0),
    SchedulerInfo("sgm_uniform", "SGM Uniform", aliases=("SGMUniform",), need_inner_model=True),
    SchedulerInfo("kl_optimal", "KL Optimal"),
    SchedulerInfo("align_your_steps", "Align Your Steps"),
    SchedulerInfo("simple", "Simple", need_inner_model=True),
    SchedulerInfo("normal", "Normal", need_inner_model=True),
    SchedulerInfo("ddim", "DDIM", need_inner_model=True),
    SchedulerInfo("beta", "Beta", need_inner_model=True),
)

DEFAULT_SAMPLER = SAMPLERS[0]
AUTOMATIC = SCHEDULERS[0]
# The A1111 API's `sampler_index` default: with no sampler_name the API runs Euler, the UI DPM++ 2M.
API_DEFAULT_SAMPLER_INDEX = "Euler"
