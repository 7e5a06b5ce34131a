"""UniPC's settings beyond the defaults: the skip types (how the steps + 1 times are spread) and the
varying-coefficient solver (uni_pc_variant vary_coeff). Parity with A1111's own UniPC code, step for step, is
tests/service/test_a1111_timestep_parity.py (needs SDWEB_A1111_DIR)."""

from __future__ import annotations

import pytest
import torch

from sdweb.core.errors import UserError
from sdweb.samplers.context import SamplerContext
from sdweb.samplers.discrete import ldm_alphas_cumprod
from sdweb.samplers.rng import ImageRNG
from sdweb.samplers.unipc import NoiseScheduleVP, sample_unipc, time_steps

SD1_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
ALPHAS = ldm_alphas_cumprod(SD1_CONFIG)
SCHEDULE = NoiseScheduleVP(ALPHAS)
T_END = 1.0 / 1000


def test_time_uniform_and_quadratic_spacing():
    uniform = time_steps(SCHEDULE, "time_uniform", 1.0, T_END, 8)
    assert torch.allclose(uniform.diff(), uniform.diff()[0].expand(8))
    quadratic = time_steps(SCHEDULE, "time_quadratic", 1.0, T_END, 8)
    roots = quadratic.sqrt()
    assert torch.allclose(roots.diff(), roots.diff()[0].expand(8), atol=1e-6)
    assert quadratic[0] == 1.0 and abs(float(quadratic[-1]) - T_END) < 1e-7


def test_log_snr_spacing_is_even_in_half_log_snr():
    times = time_steps(SCHEDULE, "logSNR", 1.0, T_END, 8)
    lambdas = SCHEDULE.lambda_(times)
    assert torch.allclose(lambdas.diff(), lambdas.diff()[0].expand(8), rtol=1e-3)
    assert abs(float(times[0]) - 1.0) < 1e-5 and abs(float(times[-1]) - T_END) < 1e-6
    assert torch.all(times.diff() < 0)


def test_unknown_skip_type_is_a_clear_error():
    with pytest.raises(UserError, match="UniPC skip type"):
        time_steps(SCHEDULE, "cosine", 1.0, T_END, 4)


def _toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth nonlinear noise prediction, different at every timestep."""
    return torch.tanh(x) * (0.5 + t.reshape(-1, 1, 1, 1) / 2000)


def _run(variant: str, order: int, steps: int = 12, batch: int = 2) -> torch.Tensor:
    rng = ImageRNG((4, 3, 3), list(range(1, batch + 1)), source="CPU")
    ctx = SamplerContext(model=_toy_eps, randn_like=lambda _: rng.next())
    return sample_unipc(ctx, rng.next(), steps, ALPHAS, order=order, variant=variant)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_vary_coeff_runs_and_agrees_with_the_bh_solvers(order):
    vary = _run("vary_coeff", order)
    bh2 = _run("bh2", order)
    assert torch.isfinite(vary).all()
    # the solvers weigh the same differences differently: close on a smooth model, not equal beyond order 1
    assert (vary - bh2).abs().max() < 0.005 * bh2.abs().max()


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(UserError, match="UniPC variant"):
        _run("bh3", 2)
