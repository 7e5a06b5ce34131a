"""A1111's sampler options that change what the CFG denoiser or the start noise does: NGMS (s_min_uncond,
"NGMS all steps"), "Ignore negative prompt during early sampling", the SGM noise multiplier, the sigma churn /
tmin / tmax / noise infotext keys, and which of a request's values win over the settings."""

from __future__ import annotations

import torch

from sdweb.config.options import OPTIONS
from sdweb.generation.unet_sampling import sampler_settings
from sdweb.infotext import infotext_to_request_fields, parse_infotext
from sdweb.samplers import find_sampler, find_scheduler
from sdweb.samplers.denoisers import CFGDenoiser, ModelInput, UncondSkip
from sdweb.samplers.discrete import DiscreteSchedule, ldm_alphas_cumprod
from sdweb.samplers.rng import ImageRNG
from sdweb.samplers.run import SamplerSettings, SamplingPlan, sample

SD1_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
MODEL = DiscreteSchedule(ldm_alphas_cumprod(SD1_CONFIG))


class RecordingModel:
    """Eps: 0.1 for cond rows, -0.1 for uncond rows; records how many rows each evaluation had."""

    def __init__(self, eps: float = 0.1) -> None:
        self.eps = eps
        self.calls: list[tuple[int, bool]] = []

    def weights(self, step: int) -> list[float]:
        return [1.0]

    def __call__(self, inputs: ModelInput) -> torch.Tensor:
        self.calls.append((len(inputs.x), inputs.with_uncond))
        out = torch.full_like(inputs.x, self.eps)
        if inputs.with_uncond:
            out[len(out) // 2:] = -self.eps
        return out


class Identity:
    def __init__(self, model: RecordingModel) -> None:
        self.model = model

    def __call__(self, x, noise_level, step, with_uncond):
        return self.model(ModelInput(x, noise_level, noise_level, step, with_uncond))


def test_ngms_skips_every_other_evaluation_below_its_sigma():
    params: dict = {}
    skip = UncondSkip(min_sigma=1.0, params=params)
    low, high = torch.tensor([0.5]), torch.tensor([3.0])
    assert [skip.applies(step, low) for step in range(4)] == [False, True, False, True]
    assert not skip.applies(1, high)
    assert params == {"NGMS": 1.0}
    every = UncondSkip(min_sigma=1.0, every_step=True, params={})
    assert all(every.applies(step, low) for step in range(4))
    assert every.params == {"NGMS": 1.0, "NGMS all steps": True}
    assert not any(UncondSkip(params={}).applies(step, low) for step in range(4))


def test_skip_early_cfg_covers_the_first_fraction_of_evaluations():
    skip = UncondSkip(skip_early=0.25, total=8, params={})
    assert [skip.applies(step, torch.tensor([10.0])) for step in range(8)] == [True, True, True] + [False] * 5
    assert skip.params == {"Skip Early CFG": 0.25}


def test_skipped_evaluation_leaves_out_the_negative_rows_and_is_unguided():
    model = RecordingModel()
    denoiser = CFGDenoiser(Identity(model), model, 7.0, skip=UncondSkip(min_sigma=1.0, every_step=True, params={}))
    x = torch.zeros(2, 4, 2, 2)
    guided = denoiser(x, torch.tensor([5.0, 5.0]))
    unguided = denoiser(x, torch.tensor([0.5, 0.5]))
    assert model.calls == [(4, True), (2, False)]
    assert torch.allclose(guided, torch.full_like(x, -0.1 + 7.0 * 0.2))
    assert torch.equal(unguided, torch.full_like(x, 0.1))


class AndModel(RecordingModel):
    """Two AND sub-prompts (weights 1 and 0.5): eps 0.1 and 0.3 for their rows, -0.1 for the negative rows."""

    def weights(self, step: int) -> list[float]:
        return [1.0, 0.5]

    def __call__(self, inputs: ModelInput) -> torch.Tensor:
        out = super().__call__(inputs)
        out[1:len(out) - (1 if inputs.with_uncond else 0):2] = 0.3
        return out


def test_a_skipped_negative_prompt_is_combined_at_scale_1_with_and_prompts():
    """A1111: the first sub-prompt stands in for the negative one and the combination runs at scale 1, so the
    second sub-prompt adds 0.5 * (0.3 - 0.1), not 7 times that."""
    model = AndModel()
    denoiser = CFGDenoiser(Identity(model), model, 7.0, skip=UncondSkip(min_sigma=1.0, every_step=True, params={}))
    x = torch.zeros(1, 4, 2, 2)
    guided = denoiser(x, torch.tensor([5.0]))
    unguided = denoiser(x, torch.tensor([0.5]))
    assert model.calls == [(3, True), (2, False)]
    assert torch.allclose(guided, torch.full_like(x, -0.1 + 7.0 * (0.2 + 0.5 * 0.4)))
    assert torch.allclose(unguided, torch.full_like(x, 0.1 + 0.5 * 0.2))


def _plan(sampler: str, settings: SamplerSettings) -> SamplingPlan:
    return SamplingPlan(sampler=find_sampler(sampler), schedule=find_scheduler("Automatic"), steps=4, cfg_scale=1.0,
                        settings=settings)


def _run(sampler: str, settings: SamplerSettings):
    model = RecordingModel(eps=0.0)  # x0 = x: Euler keeps its start latent
    rng = ImageRNG((4, 2, 2), [5], source="CPU", device="cpu")
    return sample(_plan(sampler, settings), model, MODEL, rng, [5])


def test_sgm_noise_multiplier_scales_the_start_noise():
    noise = torch.randn((1, 4, 2, 2), generator=torch.Generator().manual_seed(5))
    plain = _run("Euler", SamplerSettings())
    sgm = _run("Euler", SamplerSettings(sgm_noise_multiplier=True))
    sigma_max = MODEL.sigma_max
    assert torch.allclose(plain.latents, noise * sigma_max)
    assert torch.allclose(sgm.latents, noise * torch.sqrt(1 + sigma_max ** 2))
    assert sgm.params == {"SGM noise multiplier": True} and "SGM noise multiplier" not in plain.params


def test_sigma_settings_are_written_where_the_sampler_takes_them():
    settings = SamplerSettings(s_churn=0.5, s_tmin=0.2, s_tmax=20.0, s_noise=0.9)
    assert _run("Euler", settings).params == {"Sigma churn": 0.5, "Sigma tmin": 0.2, "Sigma tmax": 20.0,
                                              "Sigma noise": 0.9}
    assert _run("Euler a", settings).params == {"Sigma noise": 0.9}
    assert _run("LMS", settings).params == {}
    assert _run("Euler", SamplerSettings(s_tmax=0.0)).params == {}


def test_a_requests_ngms_wins_but_not_its_churn():
    settings = {"s_min_uncond": 0.0, "s_churn": 0.0}
    assert sampler_settings(settings, 2.5).s_min_uncond == 2.5
    assert sampler_settings({**settings, "s_min_uncond": 1.0}, None).s_min_uncond == 1.0


def test_options_and_infotext_keys():
    keys = {option.key for option in OPTIONS}
    assert {"s_min_uncond", "s_min_uncond_all", "skip_early_cond", "sgm_noise_multiplier", "eta_ancestral",
            "s_churn", "s_tmin", "s_tmax", "s_noise", "always_discard_next_to_last_sigma", "uni_pc_variant",
            "uni_pc_order", "uni_pc_lower_order_final"} <= keys
    parsed = parse_infotext("a cat\nSteps: 4, Sampler: Euler, NGMS: 2.5, NGMS all steps: True, Skip Early CFG: 0.2, "
                            "SGM noise multiplier: True, Sigma churn: 0.5")
    overrides = infotext_to_request_fields(parsed)[1]
    assert {key: overrides[key] for key in ("s_min_uncond", "s_min_uncond_all", "skip_early_cond",
                                            "sgm_noise_multiplier", "s_churn")} == {
        "s_min_uncond": 2.5, "s_min_uncond_all": True, "skip_early_cond": 0.2, "sgm_noise_multiplier": True,
        "s_churn": 0.5}
