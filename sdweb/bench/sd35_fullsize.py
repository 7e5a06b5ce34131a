"""SD 3.5 medium at full size with random weights, on CPU: our service vs the bare diffusers
StableDiffusion3Pipeline on the same loaded components (256², 4 steps, Euler, CFG 5), and the peak RSS of a
fresh process while it loads the file, against the fp32 weights' size.

The file is an all-in-one checkpoint in the layout ComfyUI / Forge save (`model.diffusion_model.` +
`text_encoders.{clip_l,clip_g,t5xxl}.transformer.` + `first_stage_model.`), bf16, written tensor by tensor
from the components' shapes (no module is built at full size to write it). The transformer, CLIP-L, CLIP-G and
VAE are full size; T5-XXL keeps its full width (4096) and vocabulary but only 2 of its 24 blocks, because the
fp32 T5-XXL alone (19 GB) and the rest do not fit a 23 GB machine; the per-step cost, which the ratio measures,
is the transformer's.

    python -m sdweb.bench.sd35_fullsize [--out DIR] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from sdweb.config.environment import child_environment

TRANSFORMER = {"sample_size": 128, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 24,
               "attention_head_dim": 64, "num_attention_heads": 24, "joint_attention_dim": 4096,
               "caption_projection_dim": 1536, "pooled_projection_dim": 2048, "pos_embed_max_size": 384,
               "dual_attention_layers": tuple(range(13)), "qk_norm": "rms_norm"}
CLIP_COMMON = {"vocab_size": 49408, "max_position_embeddings": 77, "layer_norm_eps": 1e-5, "pad_token_id": 1,
               "bos_token_id": 0, "eos_token_id": 2}
CLIP_L = CLIP_COMMON | {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                        "num_attention_heads": 12, "projection_dim": 768, "hidden_act": "quick_gelu"}
CLIP_G = CLIP_COMMON | {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                        "num_attention_heads": 20, "projection_dim": 1280, "hidden_act": "gelu"}
T5_TWO_BLOCKS = {"vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 2, "num_heads": 64,
                 "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
                 "feed_forward_proj": "gated-gelu", "is_gated_act": True, "dense_act_fn": "gelu_new",
                 "pad_token_id": 0, "eos_token_id": 1}
VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
       "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
       "latent_channels": 16, "norm_num_groups": 32, "sample_size": 1024, "use_quant_conv": False,
       "use_post_quant_conv": False, "scaling_factor": 1.5305, "shift_factor": 0.0609}
SIZE, STEPS, CFG, PROMPT = 256, 4, 5.0, "a photo of a cat"
FILE_NAME = "sd3.5_medium_random_fullsize.safetensors"


def _random_like(state: dict[str, torch.Tensor], seed: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random bf16 values (on CPU) for a meta state dict: norm scales 1, biases 0, weights ~ N(0, 1/fan_in);
    drawn on `device` (a GPU draws a 6B model in seconds)."""
    generator = torch.Generator(device).manual_seed(seed)
    out = {}
    for key, meta in state.items():
        if meta.ndim == 1:
            out[key] = torch.ones(meta.shape, dtype=torch.bfloat16) if "bias" not in key else \
                torch.zeros(meta.shape, dtype=torch.bfloat16)
            continue
        fan_in = max(1, meta[0].numel())
        drawn = torch.randn(meta.shape, generator=generator, device=device) / fan_in ** 0.5
        out[key] = drawn.to(torch.bfloat16).cpu()
    return out


def _meta(build: Any) -> Any:
    with torch.device("meta"):
        return build()


def write_checkpoint(path: Path) -> Path:
    import diffusers
    import safetensors.torch
    import transformers

    from sdweb.models.families import FAMILIES
    from sdweb.models.flow_convert import conversion_plan, layout_from_config, to_original
    from sdweb.models.ldm_convert import clip_l_to_ldm, vae_to_ldm

    tensors: dict[str, torch.Tensor] = {}
    transformer = _meta(lambda: diffusers.SD3Transformer2DModel(**TRANSFORMER))
    plan = conversion_plan(layout_from_config(transformer.config, FAMILIES["sd35-medium"]))
    tensors |= {f"model.diffusion_model.{k}": v
                for k, v in to_original(plan, _random_like(transformer.state_dict(), 1)).items()}
    del transformer
    for name, config, seed in (("clip_l", CLIP_L, 2), ("clip_g", CLIP_G, 3)):
        model = _meta(lambda config=config: transformers.CLIPTextModelWithProjection(
            transformers.CLIPTextConfig(**config)))
        state = _random_like(model.state_dict(), seed)
        prefix = f"text_encoders.{name}.transformer."
        tensors |= clip_l_to_ldm(state, prefix)
        if name == "clip_g":
            tensors[prefix + "text_projection.weight"] = state["text_projection.weight"]
    t5 = _meta(lambda: transformers.T5EncoderModel(transformers.T5Config(**T5_TWO_BLOCKS)))
    tensors |= {f"text_encoders.t5xxl.transformer.{k}": v for k, v in _random_like(t5.state_dict(), 4).items()
                if k != "encoder.embed_tokens.weight"}
    vae = _meta(lambda: diffusers.AutoencoderKL(**VAE))
    tensors |= vae_to_ldm(_random_like(vae.state_dict(), 5), vae.config, prefix="first_stage_model.")
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})
    return path


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_loading(data: Path) -> dict[str, Any]:
    """In this (fresh) process: load through the service, report the peak RSS against the fp32 weights."""
    from sdweb.cli import parse_options
    from sdweb.state import build_app_state

    before = _peak_rss_bytes()
    state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing"], {}))
    started = time.perf_counter()
    model = state.manager.get(None)
    seconds = time.perf_counter() - started
    weights = model.weight_bytes
    peak = _peak_rss_bytes()
    state.queue.shutdown()
    return {"weights_fp32_gb": round(weights / 1e9, 2), "peak_rss_gb": round(peak / 1e9, 2),
            "rss_before_load_gb": round(before / 1e9, 2), "peak_over_weights": round(peak / weights, 3),
            "load_s": round(seconds, 1), "goal_peak_over_weights": 1.2}


def measure_speed(data: Path, repeats: int) -> dict[str, Any]:
    import diffusers

    from sdweb.cli import parse_options
    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions
    from sdweb.state import build_app_state

    state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing"], {}))
    request = Txt2ImgRequest(prompt=PROMPT, seed=1, steps=STEPS, width=SIZE, height=SIZE, cfg_scale=CFG,
                             sampler_name="Euler", scheduler="Simple")
    no_save = SaveOptions(save_samples=False, save_grid=False)
    state.service.txt2img(request, None, no_save)  # load and warm up
    model = state.manager.get(None)
    components = dict(model.base_pipeline.components)
    components["scheduler"] = diffusers.FlowMatchEulerDiscreteScheduler(shift=model.family.scheduling.shift)
    bare_pipe = diffusers.StableDiffusion3Pipeline(**components)
    bare_pipe.set_progress_bar_config(disable=True)

    def ours() -> None:
        state.service.txt2img(request, None, no_save)

    def bare() -> None:
        with torch.no_grad():
            bare_pipe(PROMPT, num_inference_steps=STEPS, height=SIZE, width=SIZE, guidance_scale=CFG,
                      generator=torch.Generator().manual_seed(1))

    times: dict[str, list[float]] = {"ours": [], "bare": []}
    for index in range(repeats):
        order = (("ours", ours), ("bare", bare)) if index % 2 == 0 else (("bare", bare), ("ours", ours))
        for name, run in order:
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    state.queue.shutdown()
    ours_s, bare_s = statistics.median(times["ours"]), statistics.median(times["bare"])
    return {"ours_s": round(ours_s, 2), "bare_s": round(bare_s, 2), "ratio": round(ours_s / bare_s, 3),
            "runs": {k: [round(v, 2) for v in vals] for k, vals in times.items()}, "goal_ratio": 1.02,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the data dir (default: a temp folder)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--step", choices=("all", "write", "load", "speed"), default="all")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="sd35-bench-"))
    data = root / "data"
    checkpoint = data / "models" / "Stable-diffusion" / FILE_NAME
    if args.step == "write":
        write_checkpoint(checkpoint)
        return
    if args.step == "load":
        print(json.dumps(measure_loading(data)))
        return
    if args.step == "speed":
        print(json.dumps(measure_speed(data, args.repeats)))
        return
    if not checkpoint.exists():
        subprocess.run([sys.executable, "-m", "sdweb.bench.sd35_fullsize", "--out", str(root), "--step", "write"],
                       check=True)
    result: dict[str, Any] = {"file_gb": round(checkpoint.stat().st_size / 1e9, 2), "size": SIZE, "steps": STEPS}
    env = child_environment(root)
    for step in ("load", "speed"):  # each in a fresh process: the peak RSS is the load's alone
        done = subprocess.run([sys.executable, "-m", "sdweb.bench.sd35_fullsize", "--out", str(root), "--step", step,
                               "--repeats", str(args.repeats)], check=True, capture_output=True, text=True, env=env)
        result[step] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
