"""The harness shared by the A1111 parity tests (test_a1111_parity.py: k-diffusion's sampler functions;
test_a1111_timestep_parity.py: A1111's own DDIM / PLMS / UniPC / LCM code): the case description, the tiny SD1
and SDXL models, our side of each case (the service's sampling pass), A1111's per-image noise written out, the
comparison (decoded PSNR and max abs latent difference) and the table of every case.

Its fixtures are in conftest.py (a1111_models, a1111_parity_rows). Every case adds a row to a table (PSNR, max
abs latent difference) printed at the end of the session and written to ``<pytest tmp>/a1111_parity.tsv``
(bench/sampler_parity.py renders it into docs/sampler-parity.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdweb.cli import parse_options
from sdweb.generation.prompting import plan_conditioning, prepare_prompt
from sdweb.generation.unet_model import UNetExtras, UNetStage
from sdweb.generation.unet_sampling import NoiseSpec, UNetPass, sample_pass
from sdweb.samplers.resolve import find_sampler, find_scheduler
from sdweb.samplers.run import SamplerSettings, SamplingPlan
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

STEPS, CFG = 4, 5.0
DENOISING = 0.6
PSNR_GOAL = 40.0
# The tiny random VAE hides a lot (a 50% CFG error in the reference still decodes at 34-37 dB), so the final
# latents are held to float32 rounding as well.
LATENT_GOAL = 1e-3
SCHEDULES = ["Automatic", "Karras", "Exponential", "SGM Uniform", "Align Your Steps"]


@dataclass(frozen=True)
class Case:
    family: str
    sampler: str
    schedule: str = "Automatic"
    seed: int = 1
    batch: int = 1
    subseed_strength: float = 0.0
    size: tuple[int, int] = (32, 32)
    mode: str = "txt2img"  # or "img2img" (denoising 0.6) or "hires" (exact steps, denoising 0.6)
    eta: float | None = None  # the request's eta; None = the setting
    options: tuple[tuple[str, object], ...] = ()  # sampler settings (A1111 option names), e.g. uni_pc_order

    def label(self) -> str:
        extra = f" var{self.subseed_strength}" if self.subseed_strength else ""
        extra += f" eta {self.eta}" if self.eta is not None else ""
        extra += "".join(f" {name}={value}" for name, value in self.options)
        return (f"{self.family} {self.sampler} / {self.schedule} seed {self.seed} batch {self.batch}{extra} "
                f"{self.size[0]}x{self.size[1]} {self.mode}")

    def seeds(self) -> list[int]:
        """A1111's batch seeds: seed + i, or the same seed for every image when a variation seed is used."""
        return [self.seed] * self.batch if self.subseed_strength else [self.seed + i for i in range(self.batch)]

    def subseeds(self) -> list[int]:
        return [7 + i for i in range(self.batch)]

    def latent_shape(self) -> tuple[int, int, int]:
        width, height = self.size
        return 4, height // 8, width // 8


@dataclass
class OurRun:
    """Our side of one case, with what the reference needs to run the same case."""

    pipe: object
    conditioning: object  # the planned conditioning (its first state: conds[0] and uncond)
    init_latent: torch.Tensor | None
    latents: torch.Tensor


# ------------------------------------------------------------------ A1111's rules written out (shared parts)

def ldm_alphas_cumprod() -> torch.Tensor:
    """LDM's noise table (and SGM's LegacyDDPMDiscretization): cumprod in float64, stored as float32."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.tensor(np.cumprod(1.0 - betas.numpy()), dtype=torch.float32)


class ReferenceNoise:
    """modules/rng.py's ImageRNG on the CPU: a generator per seed; first draw = initial noise (slerped with the
    variation seed's first draw), later draws continue the same generators."""

    def __init__(self, shape, seeds, subseeds, strength):
        self.shape, self.seeds, self.subseeds, self.strength = shape, seeds, subseeds, strength
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.first = True

    def next(self):
        draws = [torch.randn(self.shape, generator=g) for g in self.generators]
        if self.first and self.strength:
            draws = [slerp(self.strength, noise, torch.randn(self.shape, generator=torch.Generator().manual_seed(s)))
                     for noise, s in zip(draws, self.subseeds, strict=True)]
        self.first = False
        return torch.stack(draws)


def slerp(val, low, high):
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def call_unet(pipe, case: Case, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor,
              pooled: torch.Tensor | None) -> torch.Tensor:
    """The raw UNet on rows of (x, t, text embeddings[, pooled]): what A1111's sd_model.apply_model does for
    the tiny models (SDXL: time ids of the original size, no crop, target size)."""
    added = None
    if case.family == "sdxl":
        width, height = case.size
        time_ids = torch.tensor([[height, width, 0, 0, height, width]] * x.shape[0], dtype=x.dtype)
        added = {"text_embeds": pooled, "time_ids": time_ids}
    return pipe.unet(x, t, encoder_hidden_states=embeds, added_cond_kwargs=added, return_dict=False)[0]


# ------------------------------------------------------------------------------------------- fixtures and run

def tiny_models(tmp_path_factory):
    """(app state, {family: loaded model}) for the tiny SD1 and SDXL models; the conftest's a1111_models."""
    # One thread: on a shared 2-core machine two threads wait on each other and a tiny UNet call takes 10x longer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = tmp_path_factory.mktemp("data")
    folder = data / "models" / "Stable-diffusion"
    write_tiny("sd1", folder / "tiny-sd1.safetensors", seed=1)
    write_tiny("sdxl", folder / "tiny-sdxl.safetensors", seed=2)
    state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing"], {}))
    loaded = {family: state.manager.get(f"tiny-{family}.safetensors", limit=2) for family in ("sd1", "sdxl")}
    yield state, loaded
    state.queue.shutdown()
    torch.set_num_threads(threads)


def write_table(rows: list[tuple], folder: Path) -> None:
    """Print the session's rows and write them to ``folder/a1111_parity.tsv``; the conftest's
    a1111_parity_rows calls it at the end of the session."""
    if not rows:
        return
    lines = ["case\tPSNR dB\tmax abs latent diff"] + [f"{label}\t{psnr:.1f}\t{diff:.3g}" for label, psnr, diff in rows]
    path = folder / "a1111_parity.tsv"
    path.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines) + f"\n(written to {path})")


def decode(pipe, latents):
    vae = pipe.vae
    with torch.no_grad():
        pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return ((pixels.float().clamp(-1, 1) + 1) * 127.5).round()


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def run_ours(models, case: Case) -> OurRun:
    """The case through the service's sampling pass (sample_pass), CPU noise."""
    state, loaded = models
    model = loaded[case.family]
    pipe = model.pipeline("img2img" if case.mode != "txt2img" else "txt2img")
    settings = state.service.effective_settings(_request(case))
    prepared = prepare_prompt(_request(case), model, settings)
    info = find_sampler(case.sampler)
    with torch.no_grad():
        conditioning = plan_conditioning(model, pipe, prepared, STEPS, settings, second_order=info.second_order)
    width, height = case.size
    init_latent = None
    if case.mode != "txt2img":
        init_latent = torch.randn((case.batch, *case.latent_shape()), generator=torch.Generator().manual_seed(99))
    plan = SamplingPlan(sampler=info, schedule=find_scheduler(case.schedule), steps=STEPS, cfg_scale=CFG,
                        eta=case.eta, denoising_strength=DENOISING if case.mode != "txt2img" else None,
                        exact_steps=case.mode == "hires", is_sdxl=case.family == "sdxl",
                        settings=SamplerSettings(**dict(case.options)))
    job = UNetPass(plan=plan, stages=[UNetStage(model, pipe, conditioning)],
                   extras=UNetExtras(width=width, height=height, batch=case.batch),
                   noise=NoiseSpec(seeds=case.seeds(), subseeds=case.subseeds(),
                                   subseed_strength=case.subseed_strength, source="CPU"),
                   init_latent=init_latent)
    with torch.no_grad():
        ours = sample_pass(job).latents
    return OurRun(pipe, conditioning, init_latent, ours)


def check(case: Case, run: OurRun, reference: torch.Tensor, rows: list[tuple],
          latent_goal: float = LATENT_GOAL) -> None:
    """Add the case's row to ``rows`` and hold it to the goals (decoded PSNR, max abs latent difference)."""
    value = psnr(decode(run.pipe, run.latents), decode(run.pipe, reference))
    diff = float((run.latents - reference).abs().max())
    rows.append((case.label(), value, diff))
    assert value >= PSNR_GOAL and diff <= latent_goal, f"{case.label()}: PSNR {value:.1f} dB, max latent diff {diff:.3g}"


def _request(case: Case):
    from sdweb.core.requests import Txt2ImgRequest

    return Txt2ImgRequest(prompt="a cat on a red sofa", negative_prompt="blurry", steps=STEPS, cfg_scale=CFG,
                          sampler_name=case.sampler, seed=case.seed)
