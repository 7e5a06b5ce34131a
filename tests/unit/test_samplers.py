"""Sampler / schedule-type lookup (A1111 rules), API lists, sigma schedules and diffusers scheduler building."""

from __future__ import annotations

import importlib.util
import inspect
import json
from typing import Any

import diffusers
import numpy as np
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
from sdweb.samplers.build import BuiltScheduler, build_scheduler, target_sigmas

SD1_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "prediction_type": "epsilon",
}
V_CONFIG = {**SD1_CONFIG, "prediction_type": "v_prediction"}
SDXL_CONFIG = {
    **SD1_CONFIG, "_class_name": "EulerDiscreteScheduler", "timestep_spacing": "leading",
    "interpolation_type": "linear", "use_karras_sigmas": False,
}
SIGMA_MIN, SIGMA_MAX = 0.0291675, 14.614642
# diffusers' KDPM2 schedulers trip a NumPy 2 deprecation thousands of times per build.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")
STEPS = 20


def sampler(name: str):
    found = find_sampler(name)
    assert found is not None, name
    return found


def schedule(label: str):
    found = find_scheduler(label)
    assert found is not None, label
    return found


def sd_model_sigmas() -> np.ndarray:
    scheduler = diffusers.EulerDiscreteScheduler.from_config(SD1_CONFIG)
    return schedules.model_sigmas_from_alphas_cumprod(scheduler.alphas_cumprod.numpy())


def apply(built: BuiltScheduler, steps: int) -> Any:
    """set_timesteps the way a pipeline's retrieve_timesteps does, from the call kwargs."""
    custom = {key: built.call_kwargs[key] for key in ("timesteps", "sigmas") if key in built.call_kwargs}
    if custom:
        built.scheduler.set_timesteps(**custom)
    else:
        built.scheduler.set_timesteps(steps)
    return built.scheduler


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
        cls = getattr(diffusers, info.scheduler_class)
        init = set(inspect.signature(cls.__init__).parameters)
        assert set(info.options) <= init, info.name
        assert info.default_schedule is None or info.default_schedule in schedule_names
        assert info.exact or info.note, info.name
        assert info.available or not info.exact, info.name
    unavailable = {s.name for s in SAMPLERS if not s.available}
    assert {"DPM fast", "DPM adaptive", "Restart"} <= unavailable


def test_samplers_api_list_shape_and_order():
    listed = samplers_api_list()
    json.dumps(listed)
    assert [item["name"] for item in listed] == [
        "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
        "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a",  # unavailable ones are not offered
        "DDIM", "PLMS", "UniPC", "LCM",
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


# --- sigma schedules (pure) -------------------------------------------------------------------

ALL_SCHEDULE_NAMES = [s.name for s in SCHEDULERS if s.name != "automatic"]


@pytest.mark.parametrize("name", ALL_SCHEDULE_NAMES)
@pytest.mark.parametrize("steps", [1, 2, 10, 30])
def test_schedules_are_monotone_and_end_low(name, steps):
    model_sigmas = sd_model_sigmas()
    table = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
    sigmas = schedules.a1111_sigmas(name, model_sigmas, steps, table)
    assert np.all(np.isfinite(sigmas))
    assert np.all(np.diff(sigmas) < 0)
    expected_len = len(model_sigmas[1::1000 // steps]) + 1 if name == "ddim" else steps + 1
    assert len(sigmas) == expected_len
    if name == "kl_optimal":
        assert sigmas[-1] == pytest.approx(SIGMA_MIN, rel=1e-4)
    else:
        assert sigmas[-1] == 0.0
    assert sigmas[0] <= SIGMA_MAX * 1.0001


def test_schedule_formulas():
    model_sigmas = sd_model_sigmas()
    assert model_sigmas[0] == pytest.approx(SIGMA_MIN, rel=1e-4)
    assert model_sigmas[-1] == pytest.approx(SIGMA_MAX, rel=1e-4)
    karras = schedules.karras(10, SIGMA_MIN, SIGMA_MAX)
    assert karras[0] == pytest.approx(SIGMA_MAX) and karras[-2] == pytest.approx(SIGMA_MIN)
    assert np.allclose(schedules.karras(5, 1.0, 5.0, rho=1.0)[:-1], [5.0, 4.0, 3.0, 2.0, 1.0])
    exponential = schedules.exponential(10, SIGMA_MIN, SIGMA_MAX)
    ratios = exponential[1:-1] / exponential[:-2]
    assert np.allclose(ratios, ratios[0])
    assert np.allclose(schedules.polyexponential(10, SIGMA_MIN, SIGMA_MAX), exponential)
    assert np.allclose(schedules.uniform(model_sigmas, 10), schedules.normal(model_sigmas, 10))
    simple = schedules.simple(model_sigmas, 4)
    assert np.allclose(simple[:-1], model_sigmas[[999, 749, 499, 249]])
    assert np.allclose(schedules.ddim_uniform(model_sigmas, 20)[:-1], model_sigmas[951::-50])
    assert len(schedules.ddim_uniform(model_sigmas, 30)) == 32  # A1111's stride quirk: 31 steps
    sgm = schedules.sgm_uniform(model_sigmas, 4)
    assert np.allclose(sgm[:-1], schedules.t_to_sigma(model_sigmas, np.array([999, 749.25, 499.5, 249.75])))


def test_align_your_steps_resampling():
    table = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
    assert np.allclose(schedules.align_your_steps(11, table), [*table, 0.0])
    resampled = schedules.align_your_steps(20, table)
    assert len(resampled) == 21 and resampled[0] == pytest.approx(14.615) and resampled[-2] == pytest.approx(0.029)


def test_sigmas_to_timesteps_strictly_decreasing():
    model_sigmas = sd_model_sigmas()
    sigmas = schedules.karras(150, SIGMA_MIN, SIGMA_MAX)
    timesteps = schedules.sigmas_to_timesteps(model_sigmas, sigmas, integer=True)
    assert timesteps[0] == 999 and timesteps[-1] == 0
    assert all(a > b for a, b in zip(timesteps, timesteps[1:], strict=False))
    assert all(isinstance(t, int) for t in timesteps)
    fractional = schedules.sigmas_to_timesteps(model_sigmas, sigmas, integer=False)
    assert len(fractional) == 150
    assert np.allclose(schedules.t_to_sigma(model_sigmas, np.array(fractional)), sigmas[:-1], rtol=1e-6)


# --- building diffusers schedulers ------------------------------------------------------------

BUILD_SCHEDULES = ["Automatic", "Karras", "Exponential", "SGM Uniform", "Align Your Steps", "KL Optimal"]


def check_built(built: BuiltScheduler, info, steps: int, prediction_type: str) -> None:
    scheduler = apply(built, steps)
    assert type(scheduler).__name__ == info.scheduler_class
    assert scheduler.config.prediction_type == prediction_type
    timesteps = scheduler.timesteps
    assert len(timesteps) >= 1 and torch.isfinite(timesteps.float()).all()
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None:
        assert torch.isfinite(sigmas).all() and (sigmas >= 0).all()
        assert float(sigmas.max()) <= SIGMA_MAX * 1.001
    if not info.exact:
        assert info.note in built.notes


@pytest.mark.parametrize("label", BUILD_SCHEDULES)
@pytest.mark.parametrize("info", SAMPLERS, ids=lambda s: s.name)
def test_build_every_sampler(info, label):
    built = build_scheduler(SD1_CONFIG, info, schedule(label), steps=STEPS)
    check_built(built, info, STEPS, "epsilon")


@pytest.mark.parametrize("label", ["Automatic", "Simple"])
@pytest.mark.parametrize("info", SAMPLERS, ids=lambda s: s.name)
def test_build_keeps_v_prediction(info, label):
    built = build_scheduler(V_CONFIG, info, schedule(label), steps=STEPS)
    check_built(built, info, STEPS, "v_prediction")


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("info", SAMPLERS, ids=lambda s: s.name)
def test_build_tiny_step_counts(info, steps):
    check_built(build_scheduler(SD1_CONFIG, info, AUTOMATIC, steps=steps), info, steps, "epsilon")


def test_prediction_type_override():
    built = build_scheduler(SD1_CONFIG, sampler("Euler"), AUTOMATIC, steps=STEPS, prediction_type="v_prediction")
    assert built.scheduler.config.prediction_type == "v_prediction"


@pytest.mark.parametrize(("name", "label"), [("DPM++ 2M", "Automatic"), ("Euler", "Karras"), ("LMS", "Karras"),
                                             ("UniPC", "Automatic")])
def test_karras_spacing_is_real(name, label):
    built = build_scheduler(SD1_CONFIG, sampler(name), schedule(label), steps=STEPS)
    sigmas = apply(built, STEPS).sigmas.numpy()
    if name == "UniPC":  # timestep sampler: ignores schedules, A1111's time-uniform steps
        assert not np.allclose(sigmas[:-1], schedules.karras(STEPS, SIGMA_MIN, SIGMA_MAX)[:-1], rtol=1e-3)
        return
    assert sigmas[0] == pytest.approx(SIGMA_MAX, rel=1e-4)
    assert sigmas[-2] == pytest.approx(SIGMA_MIN, rel=1e-4) and sigmas[-1] == 0.0
    assert np.allclose(sigmas, schedules.karras(STEPS, SIGMA_MIN, SIGMA_MAX), rtol=1e-4)


def test_karras_uses_full_range_on_leading_configs():
    built = build_scheduler(SDXL_CONFIG, sampler("Euler"), schedule("Karras"), steps=STEPS)
    assert apply(built, STEPS).sigmas[0].item() == pytest.approx(SIGMA_MAX, rel=1e-4)


@pytest.mark.parametrize(("name", "label"), [("Euler", "Automatic"), ("Euler a", "Automatic"), ("LMS", "Automatic"),
                                             ("Heun", "Automatic"), ("DPM++ SDE", "Uniform"), ("Euler", "Normal")])
def test_model_own_sigmas_are_a1111_uniform(name, label):
    built = build_scheduler(SDXL_CONFIG, sampler(name), schedule(label), steps=STEPS)
    sigmas = torch.unique_consecutive(apply(built, STEPS).sigmas).numpy()
    assert not built.call_kwargs and not built.notes
    assert np.allclose(sigmas, schedules.uniform(sd_model_sigmas(), STEPS), rtol=1e-4)


@pytest.mark.parametrize("label", ["Polyexponential", "SGM Uniform", "KL Optimal", "Align Your Steps", "Simple",
                                   "DDIM", "Beta", "Normal", "Uniform", "Exponential"])
def test_euler_follows_every_schedule_exactly(label):
    info, chosen = sampler("Euler"), schedule(label)
    built = build_scheduler(SD1_CONFIG, info, chosen, steps=STEPS)
    assert not built.notes
    sigmas = apply(built, STEPS).sigmas.numpy()
    expected = target_sigmas(info, chosen, sd_model_sigmas(), STEPS)
    assert np.allclose(sigmas, expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.diff(sigmas) < 0)


def test_custom_timesteps_for_dpm_solver():
    built = build_scheduler(SD1_CONFIG, sampler("DPM++ 2M"), schedule("Simple"), steps=STEPS)
    timesteps = built.call_kwargs["timesteps"]
    assert len(timesteps) == STEPS and timesteps[0] == 999
    assert all(a > b for a, b in zip(timesteps, timesteps[1:], strict=False))
    sigmas = apply(built, STEPS).sigmas.numpy()
    assert np.allclose(sigmas, schedules.simple(sd_model_sigmas(), STEPS), rtol=1e-3)


def test_discard_penultimate_sigma_for_3m_sde_custom_schedule():
    built = build_scheduler(SD1_CONFIG, sampler("DPM++ 3M SDE"), schedule("Uniform"), steps=STEPS)
    sigmas = apply(built, STEPS).sigmas.numpy()
    assert len(built.call_kwargs["timesteps"]) == STEPS
    assert sigmas[-1] == 0.0 and sigmas[-2] > SIGMA_MIN * 2  # sigma_min was the dropped one


def test_align_your_steps_differs_for_sdxl():
    info, ays = sampler("Euler"), schedule("Align Your Steps")
    sd1 = build_scheduler(SD1_CONFIG, info, ays, steps=10).call_kwargs["sigmas"]
    sdxl = build_scheduler(SD1_CONFIG, info, ays, steps=10, is_sdxl=True).call_kwargs["sigmas"]
    assert sd1[0] == pytest.approx(sdxl[0]) and sd1[3] != pytest.approx(sdxl[3])
    assert len(sd1) == 11 and sd1[-1] == 0.0


def test_flags_from_the_model_config_are_reset():
    config = {**SDXL_CONFIG, "use_karras_sigmas": True}
    built = build_scheduler(config, sampler("Euler"), schedule("Uniform"), steps=STEPS)
    assert built.scheduler.config.use_karras_sigmas is False
    assert built.scheduler.config.timestep_spacing == "linspace"


def test_timestep_samplers_ignore_schedule_and_use_a1111_timesteps():
    built = build_scheduler(SDXL_CONFIG, sampler("DDIM"), schedule("Karras"), steps=STEPS)
    assert any("ignored" in note for note in built.notes)
    assert apply(built, STEPS).timesteps.tolist() == list(range(951, 0, -50))
    assert build_scheduler(SD1_CONFIG, sampler("DDIM"), AUTOMATIC, steps=STEPS).notes == []


def test_eta():
    ddim = sampler("DDIM")
    assert build_scheduler(SD1_CONFIG, ddim, AUTOMATIC, steps=STEPS, eta=0.3).call_kwargs == {"eta": 0.3}
    assert build_scheduler(SD1_CONFIG, ddim, AUTOMATIC, steps=STEPS).call_kwargs == {}
    ancestral = build_scheduler(SD1_CONFIG, sampler("Euler a"), AUTOMATIC, steps=STEPS, eta=0.5)
    assert ancestral.call_kwargs == {} and any("eta" in note for note in ancestral.notes)
    assert build_scheduler(SD1_CONFIG, sampler("Euler a"), AUTOMATIC, steps=STEPS, eta=1.0).notes == []
    assert build_scheduler(SD1_CONFIG, sampler("Euler"), AUTOMATIC, steps=STEPS, eta=0.5).notes == []


def test_brownian_seed_and_unsupported_schedule_note():
    sde = build_scheduler(SD1_CONFIG, sampler("DPM++ SDE"), AUTOMATIC, steps=STEPS, seed=1234)
    assert sde.scheduler.config.noise_sampler_seed == 1234
    ancestral = build_scheduler(SD1_CONFIG, sampler("Euler a"), schedule("Karras"), steps=STEPS)
    assert any("karras" in note for note in ancestral.notes)


def test_lcm_beyond_its_own_schedule_falls_back_to_uniform():
    built = build_scheduler(SD1_CONFIG, sampler("LCM"), AUTOMATIC, steps=60)
    assert len(built.call_kwargs["timesteps"]) == 60
    apply(built, 60)


def test_invalid_steps():
    with pytest.raises(ValueError):
        build_scheduler(SD1_CONFIG, sampler("Euler"), AUTOMATIC, steps=0)


# --- a real (tiny) pipeline -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_sd1():
    if importlib.util.find_spec("sdweb.testing.tiny") is None:
        pytest.skip("sdweb.testing.tiny is not available")
    from sdweb.testing.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd1")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("combined_name", ["DPM++ 2M Karras", "Euler a", "Euler KL Optimal", "DPM++ 3M SDE"])
def test_tiny_pipeline_runs(tiny_sd1, combined_name):
    resolved = resolve_sampler(combined_name, None)
    built = build_scheduler(dict(tiny_sd1.scheduler.config), resolved.sampler, resolved.scheduler, steps=2)
    tiny_sd1.scheduler = built.scheduler
    output = tiny_sd1(
        "a cat", num_inference_steps=2, height=64, width=64, guidance_scale=5.0, output_type="pt",
        generator=torch.Generator().manual_seed(0), **built.call_kwargs,
    )
    assert torch.isfinite(output.images).all()
