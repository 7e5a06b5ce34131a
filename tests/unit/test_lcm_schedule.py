"""The LCM sampler walks A1111's LCM table: the model's 50 LCM timesteps (every 20th, ending at 999) give the
"Automatic" schedule and the noise range every other schedule type spans (A1111's LCMCompVisDenoiser)."""

from __future__ import annotations

import torch

from sdweb.samplers import find_sampler, find_scheduler
from sdweb.samplers.denoisers import ModelInput
from sdweb.samplers.discrete import DiscreteSchedule, ldm_alphas_cumprod
from sdweb.samplers.rng import ImageRNG
from sdweb.samplers.run import SamplingPlan, sample

SD1_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
MODEL = DiscreteSchedule(ldm_alphas_cumprod(SD1_CONFIG))


class TimestepRecorder:
    """Eps 0 everywhere; records the timestep and sigma of every evaluation."""

    def __init__(self) -> None:
        self.timesteps: list[float] = []
        self.sigmas: list[float] = []

    def weights(self, step: int) -> list[float]:
        return [1.0]

    def __call__(self, inputs: ModelInput) -> torch.Tensor:
        self.timesteps.append(float(inputs.t[0]))
        self.sigmas.append(float(inputs.sigma[0]))
        return torch.zeros_like(inputs.x)


def _run(schedule: str) -> TimestepRecorder:
    model = TimestepRecorder()
    plan = SamplingPlan(sampler=find_sampler("LCM"), schedule=find_scheduler(schedule), steps=4, cfg_scale=1.0)
    sample(plan, model, MODEL, ImageRNG((4, 2, 2), [1], source="CPU"), [1])
    return model


def test_lcm_automatic_schedule_spans_the_lcm_timesteps():
    # 4 points evenly spaced from 999 down to 19 (the first LCM timestep), each snapped to the nearest LCM
    # timestep in log sigma; the old schedule ran from 999 to 0 and ended on timestep 19 from sigma 0.029
    model = _run("Automatic")
    assert model.timesteps == [999, 679, 339, 19]
    assert abs(model.sigmas[-1] - float(MODEL.sigmas[19])) < 1e-6  # via log sigma: float32 rounding


def test_lcm_schedule_types_span_the_lcm_noise_range():
    model = _run("Karras")
    assert abs(model.sigmas[0] - float(MODEL.sigmas[999])) < 1e-5  # float32 rounding of log / power
    assert abs(model.sigmas[-1] - float(MODEL.sigmas[19])) < 1e-6
    assert model.timesteps == [999, 759, 339, 19]
