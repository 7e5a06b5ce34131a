"""Acceptance for A1111 parity of the samplers A1111 implements itself (not k-diffusion): DDIM, DDIM CFG++,
PLMS, UniPC and LCM. The reference is A1111's own code (sd_samplers_timesteps*, uni_pc, sd_samplers_lcm, its
CFG denoiser and Sampler classes), loaded from the folder named in SDWEB_A1111_DIR by
sdweb/testing/a1111_reference.py; without it (CI) every case skips with the reason.

Same harness as test_a1111_parity.py (a1111_harness.py): our sampling pass on the tiny SD1 and SDXL models
against the reference on the same conditioning and per-image noise. With A1111's own code as the reference the
goal is exact: identical final latents (so decoded PSNR inf). The default run is a representative subset;
``-m slow`` runs the full cross product.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from a1111_harness import (
    CFG,
    DENOISING,
    SCHEDULES,
    STEPS,
    Case,
    ReferenceNoise,
    call_unet,
    check,
    ldm_alphas_cumprod,
    run_ours,
)

from sdweb.testing import a1111_reference

pytestmark = pytest.mark.skipif(a1111_reference.unavailable_reason() is not None,
                                reason=a1111_reference.unavailable_reason() or "")

SAMPLERS = ["DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM"]
# UniPC's img2img at 4 steps and denoising 0.6 walks 2 timesteps, fewer than the default order 3: A1111 stops
# with "UniPC order must be < sampling steps" (sdweb lowers the order instead), so those cases set order 2.
UNIPC_SHORT = (("uni_pc_order", 2),)
UNIPC_SETTINGS = ((("uni_pc_variant", "bh2"),), (("uni_pc_order", 2),), (("uni_pc_lower_order_final", False),),
                  (("uni_pc_variant", "bh2"), ("uni_pc_order", 4)))
# A1111's vary_coeff solver works on batch 1 only (its step ratios do not broadcast over a batch: larger batches
# stop with a tensor error there), so its cases are batch 1; sdweb runs any batch size.
VARY_COEFF = tuple((("uni_pc_variant", "vary_coeff"), *extra) for extra in (
    (), (("uni_pc_order", 1),), (("uni_pc_order", 2),), (("uni_pc_lower_order_final", False),),
    (("uni_pc_skip_type", "logSNR"),)))
SKIP_TYPES = tuple((("uni_pc_skip_type", skip),) for skip in ("time_quadratic", "logSNR"))


def reference_latents(run, case: Case) -> torch.Tensor:
    state = run.conditioning.first
    cond, uncond = state.conds[0], state.uncond
    sdxl = case.family == "sdxl"
    prompt = a1111_reference.Prompt(cond.embeds, uncond.embeds, cond.pooled if sdxl else None,
                                    uncond.pooled if sdxl else None)
    model = a1111_reference.StandInModel(lambda x, t, embeds, pooled: call_unet(run.pipe, case, x, t, embeds, pooled),
                                         ldm_alphas_cumprod(), is_sdxl=sdxl, v_prediction=False)
    noise = ReferenceNoise(case.latent_shape(), case.seeds(), case.subseeds(), case.subseed_strength)
    job = a1111_reference.Job(sampler=case.sampler, steps=STEPS, cfg_scale=CFG, model=model, prompt=prompt,
                              batch=case.batch, next_noise=noise.next, scheduler=case.schedule, eta=case.eta,
                              init_latent=run.init_latent, denoising_strength=DENOISING, hires=case.mode == "hires",
                              options=dict(case.options))
    latents, _ = a1111_reference.sample(job)
    return latents


def run_case(models, rows, case: Case) -> None:
    run = run_ours(models, case)
    check(case, run, reference_latents(run, case), rows, latent_goal=0.0)


def _modes(sampler: str) -> list[Case]:
    """img2img at 0.6 and a hires pass (exact steps) for one sampler on one family."""
    img2img_options = UNIPC_SHORT if sampler == "UniPC" else ()
    return [Case("sd1", sampler, batch=2, mode="img2img", options=img2img_options),
            Case("sd1", sampler, batch=2, mode="hires")]


DEFAULT_CASES = (
    [Case("sd1", name) for name in SAMPLERS]
    + [Case("sdxl", name, seed=12345, batch=2) for name in SAMPLERS]
    + [Case("sd1", "DDIM", eta=0.5, batch=2), Case("sd1", "LCM", "Karras"),
       Case("sd1", "UniPC", mode="img2img", options=UNIPC_SHORT), Case("sd1", "DDIM", mode="img2img"),
       Case("sd1", "PLMS", mode="hires"), Case("sd1", "LCM", mode="img2img")]
    + [Case("sd1", "UniPC", options=VARY_COEFF[0]), Case("sd1", "UniPC", batch=2, options=SKIP_TYPES[0]),
       Case("sd1", "UniPC", batch=2, options=SKIP_TYPES[1], mode="hires")]
)
FULL_CASES = [
    Case(family, sampler, schedule, seed, batch)
    for family, sampler, schedule, seed, batch in itertools.product(("sd1", "sdxl"), SAMPLERS, SCHEDULES,
                                                                    (1, 12345), (1, 2))
] + [case for sampler in SAMPLERS for case in _modes(sampler)] + [
    Case(family, sampler, "Automatic", 1, 2, *extra)
    for family, sampler in itertools.product(("sd1", "sdxl"), SAMPLERS)
    for extra in ((0.3,), (0.0, (48, 32)))
] + [
    Case(family, sampler, eta=0.5, batch=2)
    for family, sampler in itertools.product(("sd1", "sdxl"), ("DDIM", "DDIM CFG++"))
] + [
    Case(family, "UniPC", batch=batch, options=options, mode=mode)
    for family, options, batch, mode in itertools.chain(
        [("sd1", option, 2, "txt2img") for option in UNIPC_SETTINGS],
        [(family, option, 1, mode) for family, option, mode in itertools.product(
            ("sd1", "sdxl"), VARY_COEFF, ("txt2img", "hires"))],
        [(family, skip, 2, mode) for family, skip, mode in itertools.product(
            ("sd1", "sdxl"), SKIP_TYPES, ("txt2img", "hires"))])
]


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=Case.label)
def test_matches_a1111_code(a1111_models, a1111_parity_rows, case):
    run_case(a1111_models, a1111_parity_rows, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [case for case in FULL_CASES if case not in DEFAULT_CASES], ids=Case.label)
def test_matches_a1111_code_full(a1111_models, a1111_parity_rows, case):
    run_case(a1111_models, a1111_parity_rows, case)
