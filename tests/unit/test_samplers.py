"""Sampler / schedule-type lookup (A1111 rules), API lists, the discrete noise table, A1111's schedules and the
sampling plan rules (img2img cut, discard, timesteps)."""

from __future__ import annotations

import json

import pytest
import torch

from sdweb.core.errors import NotFoundError
from sdweb.samplers import (
    API_DEFAULT_SAMPLER_INDEX,
    AUTOMATIC,
    SAMPLERS,
    SCHEDULERS,
    find_sampler,
    find_scheduler,
    resolve_sampler,
    samplers_api_list,
    scheduler_for_infotext,
    schedulers_api_list,
    schedules,
)
from sdweb.samplers.discrete import DiscreteSchedule, ldm_alphas_cumprod
from sdweb.samplers.run import (
    SIGMA_FUNCTIONS,
    TIMESTEP_FUNCTIONS,
    SamplerSettings,
    SamplingPlan,
    get_sigmas,
    img2img_steps,
)
from sdweb.samplers.timestep_samplers import ddim_timesteps
from sdweb.testing import kdiffusion_reference

SD1_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
MODEL = DiscreteSchedule(ldm_alphas_cumprod(SD1_CONFIG))
SIGMA_MIN, SIGMA_MAX = float(MODEL.sigma_min), float(MODEL.sigma_max)


def sampler(name: str):
    found = find_sampler(name)
    assert found is not None, name
    return found


def schedule(label: str):
    found = find_scheduler(label)
    assert found is not None, label
    return found


# --- resolution -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sampler_name", "scheduler", "expected_sampler", "expected_schedule"),
    [
        ("DPM++ 2M Karras", None, "DPM++ 2M", "Karras"),
        ("Euler a Exponential", None, "Euler a", "Exponential"),
        ("DPM++ 2M SDE SGMUniform", None, "DPM++ 2M SDE", "SGM Uniform"),
        ("LMS Karras", None, "LMS", "Karras"),
        ("DPM2 a Karras", None, "DPM2 a", "Karras"),
        ("DPM++ 2M SDE Heun", None, "DPM++ 2M SDE Heun", "Automatic"),
        ("DPM++ 2M SDE Heun Exponential", None, "DPM++ 2M SDE Heun", "Exponential"),
        ("Euler a karras", None, "Euler a", "Karras"),
        ("Euler sgm_uniform", None, "Euler", "SGM Uniform"),
        ("Euler Align Your Steps", None, "Euler", "Align Your Steps"),
        ("DDIM", None, "DDIM", "Automatic"),
        ("DDIM CFG++", None, "DDIM CFG++", "Automatic"),
        ("Euler Karras", "Exponential", "Euler", "Karras"),  # the suffix wins
        ("Euler", "karras", "Euler", "Karras"),
        ("Euler", "Karras", "Euler", "Karras"),
        ("Euler", "SGMUniform", "Euler", "SGM Uniform"),
        ("Euler", "kl_optimal", "Euler", "KL Optimal"),
        ("Euler", None, "Euler", "Automatic"),
        ("Euler", "", "Euler", "Automatic"),
        ("k_euler_a", None, "Euler a", "Automatic"),
        ("k_euler_ancestral", None, "Euler a", "Automatic"),
        ("k_dpmpp_2m_sde", None, "DPM++ 2M SDE", "Automatic"),
        ("k_lms Karras", None, "LMS", "Karras"),
        ("euler a", None, "Euler a", "Automatic"),
        ("EULER A KARRAS", None, "Euler a", "Karras"),
        ("dpm++ 2m", "BETA", "DPM++ 2M", "Beta"),
    ],
)
def test_resolve_names(sampler_name, scheduler, expected_sampler, expected_schedule):
    resolved = resolve_sampler(sampler_name, scheduler, convert_automatic=False)
    assert (resolved.sampler.name, resolved.scheduler.label) == (expected_sampler, expected_schedule)
    assert resolved.warning is None


@pytest.mark.parametrize(
    ("sampler_name", "expected_schedule"),
    [("DPM++ 2M Karras", "Automatic"), ("DPM2 a Karras", "Automatic"), ("DPM++ 2M SDE Exponential", "Automatic"),
     ("DPM++ 2M Exponential", "Exponential"), ("Euler a Karras", "Karras")],
)
def test_default_schedule_reported_as_automatic(sampler_name, expected_schedule):
    assert resolve_sampler(sampler_name, None).scheduler.label == expected_schedule


def test_unknown_sampler_falls_back_to_dpmpp_2m_with_warning():
    resolved = resolve_sampler("Nonexistent sampler", None)
    assert resolved.sampler.name == "DPM++ 2M"
    assert resolved.warning and "Nonexistent sampler" in resolved.warning
    assert resolve_sampler("Nonexistent Exponential", None).scheduler.label == "Exponential"


def test_unknown_sampler_strict_raises_with_valid_names():
    with pytest.raises(NotFoundError) as caught:
        resolve_sampler("Nonexistent sampler", None, strict=True)
    assert "Nonexistent sampler" in caught.value.message
    assert "DPM++ 2M" in caught.value.hint and "Euler a" in caught.value.hint
    assert caught.value.status_code == 404


def test_unknown_schedule():
    resolved = resolve_sampler("Euler", "Wobbly")
    assert resolved.scheduler is AUTOMATIC and "Wobbly" in resolved.warning
    with pytest.raises(NotFoundError, match="Wobbly"):
        resolve_sampler("Euler", "Wobbly", strict=True)


@pytest.mark.parametrize(
    ("sampler_name", "sampler_index", "expected"),
    [
        (None, "Euler", "Euler"),
        ("", "Euler a", "Euler a"),
        ("DDIM", "Euler", "DDIM"),
        (None, "DPM++ 2M Karras", "DPM++ 2M"),
        (None, None, "DPM++ 2M"),
        ("", "", "DPM++ 2M"),
        (None, API_DEFAULT_SAMPLER_INDEX, "Euler"),
    ],
)
def test_sampler_index_fallback(sampler_name, sampler_index, expected):
    resolved = resolve_sampler(sampler_name, None, sampler_index)
    assert resolved.sampler.name == expected
    assert resolved.warning is None


@pytest.mark.parametrize(
    ("sampler_name", "schedule_label", "expected"),
    [
        ("DPM++ 2M", "Automatic", "Karras"),
        ("DPM++ 2M SDE", "Automatic", "Exponential"),
        ("Euler", "Automatic", "Automatic"),
        ("Euler", "Karras", "Karras"),
        ("Euler a", "Uniform", "Uniform"),
        ("DDIM", "Karras", "Karras"),
        ("DDIM", "Automatic", "Automatic"),
        ("LCM", "Automatic", "Automatic"),
    ],
)
def test_scheduler_for_infotext(sampler_name, schedule_label, expected):
    assert scheduler_for_infotext(sampler(sampler_name), schedule(schedule_label)) == expected


def test_legacy_name_round_trips_to_infotext():
    resolved = resolve_sampler("DPM++ 2M Karras", None)
    assert scheduler_for_infotext(resolved.sampler, resolved.scheduler) == "Karras"


# --- table and API lists ----------------------------------------------------------------------

def test_table_integrity():
    owner: dict[str, str] = {}
    for info in SAMPLERS:
        for word in {w.casefold() for w in (info.name, *info.aliases)}:
            assert owner.setdefault(word, info.name) == info.name, f"{word!r} names two samplers"
    schedule_names = {s.name for s in SCHEDULERS}
    for info in SAMPLERS:
        assert info.default_schedule is None or info.default_schedule in schedule_names
        functions = TIMESTEP_FUNCTIONS.keys() | {"unipc"} if info.is_timestep_sampler else SIGMA_FUNCTIONS.keys()
        assert info.function in functions, info.name


def test_samplers_api_list_shape_and_order():
    listed = samplers_api_list()
    json.dumps(listed)
    assert [item["name"] for item in listed] == [
        "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
        "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart",
        "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM",
    ]
    by_name = {item["name"]: item for item in listed}
    assert all(set(item) == {"name", "aliases", "options"} for item in listed)
    assert all(isinstance(value, str) for item in listed for value in item["options"].values())
    assert by_name["DPM++ 2M"] == {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}}
    assert by_name["DPM++ SDE"]["options"] == {"scheduler": "karras", "second_order": "True", "brownian_noise": "True"}
    assert by_name["DPM++ 2M SDE Heun"]["options"] == {
        "scheduler": "exponential", "brownian_noise": "True", "solver_type": "heun"}
    assert by_name["DPM2 a"]["options"] == {
        "scheduler": "karras", "discard_next_to_last_sigma": "True", "uses_ensd": "True", "second_order": "True"}
    assert by_name["Euler a"] == {"name": "Euler a", "aliases": ["k_euler_a", "k_euler_ancestral"],
                                  "options": {"uses_ensd": "True"}}
    assert by_name["Restart"] == {"name": "Restart", "aliases": ["restart"],
                                  "options": {"scheduler": "karras", "second_order": "True"}}
    assert by_name["DPM fast"]["aliases"] == ["k_dpm_fast"] and by_name["DPM adaptive"]["aliases"] == ["k_dpm_ad"]
    assert by_name["DDIM CFG++"]["aliases"] == ["ddim_cfgpp"] and by_name["LCM"]["aliases"] == ["k_lcm"]
    assert by_name["Euler"]["options"] == {} and by_name["UniPC"]["aliases"] == ["unipc"]


def test_schedulers_api_list_shape_and_order():
    listed = schedulers_api_list()
    json.dumps(listed)
    assert [item["label"] for item in listed] == [
        "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
        "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
    ]
    assert listed[0] == {"name": "automatic", "label": "Automatic", "aliases": None, "default_rho": -1.0,
                         "need_inner_model": False}
    by_name = {item["name"]: item for item in listed}
    assert by_name["karras"] == {"name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0,
                                 "need_inner_model": False}
    assert by_name["sgm_uniform"]["aliases"] == ["SGMUniform"] and by_name["sgm_uniform"]["need_inner_model"]
    assert by_name["polyexponential"]["default_rho"] == 1.0


# --- the discrete table and schedules -----------------------------------------------------------

def test_ldm_noise_table():
    """LDM builds betas in float64 and stores alphas_cumprod in float32; diffusers' float32 betas give a
    sigma_max off in the 7th digit (14.6146469), which moves every Brownian-tree query."""
    assert MODEL.alphas_cumprod.dtype == torch.float32 and len(MODEL.sigmas) == 1000
    assert pytest.approx(14.6146431, abs=2e-6) == SIGMA_MAX and abs(SIGMA_MAX - 14.6146469) > 2e-6
    assert pytest.approx(0.0291675, rel=1e-5) == SIGMA_MIN
    t = torch.tensor([0.0, 10.5, 998.25, 999.0])
    assert torch.allclose(MODEL.sigma_to_t(MODEL.t_to_sigma(t)), t, atol=1e-3)


ALL_SCHEDULE_NAMES = [s.name for s in SCHEDULERS if s.name != "automatic"]


@pytest.mark.parametrize("name", ALL_SCHEDULE_NAMES)
@pytest.mark.parametrize("steps", [1, 2, 10, 30])
def test_schedules_are_monotone_and_end_low(name, steps):
    sigmas = schedules.schedule_sigmas(name, MODEL, steps)
    assert sigmas.dtype == torch.float32 and torch.isfinite(sigmas).all()
    assert (sigmas[1:] < sigmas[:-1]).all()
    expected_len = len(range(1, 1000, 1000 // steps)) + 1 if name == "ddim" else steps + 1
    assert len(sigmas) == expected_len
    if name == "kl_optimal":
        assert float(sigmas[-1]) == pytest.approx(SIGMA_MIN, rel=1e-4)
    else:
        assert sigmas[-1] == 0.0
    assert sigmas[0] <= 14.615 * 1.0001


@pytest.mark.skipif(not kdiffusion_reference.available(), reason="k-diffusion (dev extra) missing")
def test_schedules_equal_k_diffusions():
    sampling, external = kdiffusion_reference.load()

    class Model:
        alphas_cumprod = MODEL.alphas_cumprod

    reference = external.CompVisDenoiser(Model())
    assert torch.equal(reference.sigmas, MODEL.sigmas)
    for steps in (4, 20):
        assert torch.equal(schedules.schedule_sigmas("karras", MODEL, steps),
                           sampling.get_sigmas_karras(steps, SIGMA_MIN, SIGMA_MAX))
        assert torch.equal(schedules.schedule_sigmas("exponential", MODEL, steps),
                           sampling.get_sigmas_exponential(steps, SIGMA_MIN, SIGMA_MAX))
        assert torch.equal(schedules.schedule_sigmas("polyexponential", MODEL, steps),
                           sampling.get_sigmas_polyexponential(steps, SIGMA_MIN, SIGMA_MAX))
        assert torch.equal(schedules.schedule_sigmas("uniform", MODEL, steps), reference.get_sigmas(steps))
        t = torch.tensor([3.7, 512.2, 998.9])
        assert torch.equal(MODEL.sigma_to_t(MODEL.t_to_sigma(t)), reference.sigma_to_t(reference.t_to_sigma(t)))


def test_schedule_formulas():
    karras = schedules.karras(10, SIGMA_MIN, SIGMA_MAX)
    assert float(karras[0]) == pytest.approx(SIGMA_MAX) and float(karras[-2]) == pytest.approx(SIGMA_MIN)
    assert torch.allclose(schedules.karras(5, 1.0, 5.0, rho=1.0)[:-1], torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]))
    exponential = schedules.exponential(10, SIGMA_MIN, SIGMA_MAX)
    ratios = exponential[1:-1] / exponential[:-2]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))
    assert torch.allclose(schedules.schedule_sigmas("uniform", MODEL, 10), schedules.schedule_sigmas("normal", MODEL, 10))
    simple = schedules.schedule_sigmas("simple", MODEL, 4)
    assert torch.allclose(simple[:-1], MODEL.sigmas[[999, 749, 499, 249]])
    assert torch.allclose(schedules.schedule_sigmas("ddim", MODEL, 20)[:-1], MODEL.sigmas[list(range(951, 0, -50))])
    assert len(schedules.schedule_sigmas("ddim", MODEL, 30)) == 32  # A1111's stride quirk: 31 steps
    sgm = schedules.schedule_sigmas("sgm_uniform", MODEL, 4)
    assert torch.allclose(sgm[:-1], MODEL.t_to_sigma(torch.tensor([999, 749.25, 499.5, 249.75])), rtol=1e-5)


def test_align_your_steps_tables():
    assert torch.allclose(schedules.align_your_steps(11, False), torch.tensor([*schedules.AYS_SD1, 0.0]))
    resampled = schedules.align_your_steps(20, False)
    assert len(resampled) == 21 and float(resampled[0]) == pytest.approx(14.615)
    assert float(resampled[-2]) == pytest.approx(0.029)
    assert not torch.allclose(schedules.align_your_steps(20, True), resampled)


# --- what a pass runs ----------------------------------------------------------------------------

def plan(name, label="Automatic", steps=20, **fields):
    return SamplingPlan(sampler=sampler(name), schedule=schedule(label), steps=steps, cfg_scale=7.0, **fields)


@pytest.mark.parametrize(("name", "label", "expected"), [
    ("Euler a", "Karras", "karras"), ("Euler a", "Automatic", "uniform"), ("DPM++ 2M", "Automatic", "karras"),
    ("DPM++ 2M SDE", "Automatic", "exponential"), ("Euler", "SGM Uniform", "sgm_uniform"),
    ("Euler", "Align Your Steps", "align_your_steps"),
])
def test_the_schedule_used_is_the_one_named(name, label, expected):
    """Euler a + Karras runs Karras sigmas (sdweb used to run linspace there while the infotext said Karras)."""
    used = get_sigmas(plan(name, label), MODEL, 20, {})
    assert torch.equal(used, schedules.schedule_sigmas(expected, MODEL, 20))


def test_discard_penultimate_sigma():
    used = get_sigmas(plan("DPM2"), MODEL, 10, {})
    full = schedules.karras(11, SIGMA_MIN, SIGMA_MAX)
    assert torch.equal(used, torch.cat([full[:-2], full[-1:]])) and len(used) == 11
    params = {}
    forced = get_sigmas(plan("Euler", settings=SamplerSettings(always_discard_next_to_last_sigma=True)), MODEL, 10, params)
    assert len(forced) == 11 and params == {"Discard penultimate sigma": True}


def test_schedule_settings_are_recorded():
    params = {}
    settings = SamplerSettings(sigma_min=0.1, sigma_max=10.0, rho=5.0)
    used = get_sigmas(plan("Euler", "Karras", settings=settings), MODEL, 8, params)
    assert torch.equal(used, schedules.karras(8, 0.1, 10.0, 5.0))
    assert params == {"Schedule min sigma": 0.1, "Schedule max sigma": 10.0, "Schedule rho": 5.0}


@pytest.mark.parametrize(("steps", "strength", "fix", "expected"), [
    (20, 0.6, False, (20, 12)), (20, 0.75, False, (20, 15)), (20, 1.0, False, (20, 19)), (3, 0.1, False, (3, 0)),
    (20, 0.6, True, (33, 19)), (8, 0.5, True, (16, 7)),
])
def test_img2img_steps(steps, strength, fix, expected):
    """A1111's setup_img2img_steps: t_enc + 1 steps of the schedule's tail run."""
    assert img2img_steps(plan("Euler", steps=steps, denoising_strength=strength, exact_steps=fix)) == expected


def test_ddim_timesteps_follow_a1111():
    assert ddim_timesteps(20).tolist() == list(range(1, 1000, 50))
    assert len(ddim_timesteps(30)) == 31  # 1000 // 30 = 33: range(0, 1000, 33) has 31 entries
