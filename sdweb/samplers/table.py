"""A1111's samplers and schedule types as data: the one sampler table of the program.

Order is A1111's UI order (``SAMPLERS[0]`` "DPM++ 2M" is the UI default; ``SCHEDULERS[0]`` is
"Automatic"). The names, aliases and flags are what /sdapi/v1/samplers and /sdapi/v1/schedulers
report; ``function`` names the sampler function in :mod:`sdweb.samplers.run` that runs it (A1111's
k-diffusion function names, and its timestep samplers "ddim", "ddim_cfgpp", "plms", "unipc").
"""

from __future__ import annotations

from dataclasses import dataclass

# Settings A1111 falls back to when a request has no eta (opts eta_ancestral / eta_ddim).
ETA_ANCESTRAL_DEFAULT = 1.0
ETA_DDIM_DEFAULT = 0.0


@dataclass(frozen=True)
class SamplerInfo:
    """One entry of A1111's "Sampling method" list."""

    name: str
    aliases: tuple[str, ...]
    function: str
    default_schedule: str | None = None  # scheduler name "Automatic" resolves to; None = model's own
    second_order: bool = False
    uses_ensd: bool = False
    brownian_noise: bool = False
    discard_penultimate_sigma: bool = False
    is_timestep_sampler: bool = False  # DDIM/PLMS/UniPC: A1111 ignores the Schedule type
    solver_type: str | None = None  # DPM++ 2M SDE Heun: "heun"
    eta_default: float | None = None  # None: eta does not apply to this sampler
    uses_schedule: bool = True  # DPM fast / adaptive integrate between two noise levels instead

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


_ETA = ETA_ANCESTRAL_DEFAULT

SAMPLERS: tuple[SamplerInfo, ...] = (
    SamplerInfo("DPM++ 2M", ("k_dpmpp_2m",), "sample_dpmpp_2m", default_schedule="karras"),
    SamplerInfo("DPM++ SDE", ("k_dpmpp_sde",), "sample_dpmpp_sde", default_schedule="karras", second_order=True,
                brownian_noise=True, eta_default=_ETA),
    SamplerInfo("DPM++ 2M SDE", ("k_dpmpp_2m_sde",), "sample_dpmpp_2m_sde", default_schedule="exponential",
                brownian_noise=True, eta_default=_ETA),
    SamplerInfo("DPM++ 2M SDE Heun", ("k_dpmpp_2m_sde_heun",), "sample_dpmpp_2m_sde",
                default_schedule="exponential", brownian_noise=True, solver_type="heun", eta_default=_ETA),
    SamplerInfo("DPM++ 2S a", ("k_dpmpp_2s_a",), "sample_dpmpp_2s_ancestral", default_schedule="karras",
                uses_ensd=True, second_order=True, eta_default=_ETA),
    SamplerInfo("DPM++ 3M SDE", ("k_dpmpp_3m_sde",), "sample_dpmpp_3m_sde", default_schedule="exponential",
                discard_penultimate_sigma=True, brownian_noise=True, eta_default=_ETA),
    SamplerInfo("Euler a", ("k_euler_a", "k_euler_ancestral"), "sample_euler_ancestral", uses_ensd=True,
                eta_default=_ETA),
    SamplerInfo("Euler", ("k_euler",), "sample_euler"),
    SamplerInfo("LMS", ("k_lms",), "sample_lms"),
    SamplerInfo("Heun", ("k_heun",), "sample_heun", second_order=True),
    SamplerInfo("DPM2", ("k_dpm_2",), "sample_dpm_2", default_schedule="karras", discard_penultimate_sigma=True,
                second_order=True),
    SamplerInfo("DPM2 a", ("k_dpm_2_a",), "sample_dpm_2_ancestral", default_schedule="karras",
                discard_penultimate_sigma=True, uses_ensd=True, second_order=True, eta_default=_ETA),
    SamplerInfo("DPM fast", ("k_dpm_fast",), "sample_dpm_fast", uses_ensd=True, eta_default=_ETA,
                uses_schedule=False),
    SamplerInfo("DPM adaptive", ("k_dpm_ad",), "sample_dpm_adaptive", uses_ensd=True, eta_default=_ETA,
                uses_schedule=False),
    SamplerInfo("Restart", ("restart",), "sample_restart", default_schedule="karras", second_order=True),
    SamplerInfo("DDIM", ("ddim",), "ddim", is_timestep_sampler=True, eta_default=ETA_DDIM_DEFAULT),
    SamplerInfo("DDIM CFG++", ("ddim_cfgpp",), "ddim_cfgpp", is_timestep_sampler=True,
                eta_default=ETA_DDIM_DEFAULT),
    SamplerInfo("PLMS", ("plms",), "plms", is_timestep_sampler=True),
    SamplerInfo("UniPC", ("unipc",), "unipc", is_timestep_sampler=True),
    SamplerInfo("LCM", ("k_lcm",), "sample_lcm"),
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
