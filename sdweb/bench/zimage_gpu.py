"""Z-Image Turbo at full size with random weights: 1024², 8 steps, CFG 1, through our service and through the
bare diffusers ZImagePipeline on the same loaded components (seconds per image, medians), and peak VRAM.
Issue goal: under 3 s per image on the lent GPU.

The files are the ones users have, written tensor by tensor from the components' shapes: the transformer in
its original keys (`z_image_turbo.safetensors`, bf16, 6B), the Qwen3-4B encoder (`qwen_3_4b.safetensors`,
HF causal-LM keys) and the Flux VAE (`ae.safetensors`). The random draws run on the GPU when there is one.

    python -m sdweb.bench.zimage_gpu [--out DIR] [--repeats 3] [--tiny]

--tiny uses the test factory's tiny dimensions at 64², 2 steps: a check of this script on any machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from sdweb.bench.sd35_fullsize import _meta, _random_like

QWEN3_4B = {"vocab_size": 151936, "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 40960,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
FLUX_AE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
           "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [128, 256, 512, 512],
           "layers_per_block": 2, "latent_channels": 16, "norm_num_groups": 32, "sample_size": 1024,
           "use_quant_conv": False, "use_post_quant_conv": False, "scaling_factor": 0.3611, "shift_factor": 0.1159}
FILES = {"transformer": "models/Stable-diffusion/z_image_turbo_random_fullsize.safetensors",
         "text_encoder": "models/text_encoder/qwen_3_4b.safetensors", "vae": "models/VAE/ae.safetensors"}
PROMPT = "a photo of a cat"


def _configs(tiny: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    if tiny:
        from sdweb.testing.tiny_flow import FLUX_VAE, QWEN3, Z_IMAGE

        return Z_IMAGE, QWEN3, FLUX_VAE
    return {}, QWEN3_4B, FLUX_AE  # the transformer's defaults are Z-Image's real size


def write_files(data: Path, tiny: bool, device: str) -> float:
    """The three files (bf16); returns their size in GB."""
    import diffusers
    import safetensors.torch
    import transformers

    from sdweb.models.families import FAMILIES
    from sdweb.models.flow_convert import conversion_plan, layout_from_config, to_original
    from sdweb.models.ldm_convert import vae_to_ldm

    transformer_config, qwen_config, vae_config = _configs(tiny)
    transformer = _meta(lambda: diffusers.ZImageTransformer2DModel(**transformer_config))
    plan = conversion_plan(layout_from_config(transformer.config, FAMILIES["z-image"]))
    contents = {"transformer": lambda: to_original(plan, _random_like(transformer.state_dict(), 1, device))}
    qwen = _meta(lambda: transformers.Qwen3Model(transformers.Qwen3Config(**qwen_config)))
    contents["text_encoder"] = lambda: {f"model.{key}": value
                                        for key, value in _random_like(qwen.state_dict(), 2, device).items()}
    vae = _meta(lambda: diffusers.AutoencoderKL(**vae_config))
    contents["vae"] = lambda: vae_to_ldm(_random_like(vae.state_dict(), 3, device), vae.config, prefix="")
    total = 0
    for name, make in contents.items():
        path = data / FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {key: value.contiguous() for key, value in make().items()}
        safetensors.torch.save_file(tensors, str(path), metadata={"format": "pt"})
        total += path.stat().st_size
        del tensors
    return total / 1e9


def measure(data: Path, size: int, steps: int, repeats: int) -> dict[str, Any]:
    import diffusers

    from sdweb.cli import parse_options
    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions
    from sdweb.runtime.policy import probe_hardware
    from sdweb.state import build_app_state

    cuda = bool(probe_hardware().cuda_devices)
    state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing", "--disable-nan-check"], {}))
    state.settings.update({"live_previews_enable": False}, save=False)
    request = Txt2ImgRequest(prompt=PROMPT, seed=1, steps=steps, width=size, height=size, cfg_scale=1.0,
                             sampler_name="Euler", scheduler="Simple")
    no_save = SaveOptions(save_samples=False, save_grid=False)
    started = time.perf_counter()
    first = state.service.txt2img(request, None, no_save)  # load and warm up
    first_s = time.perf_counter() - started
    model = state.manager.get(None)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def ours() -> None:
        state.service.txt2img(request, None, no_save)

    runs: dict[str, Any] = {"ours": ours}
    bare_error = None
    try:
        components = dict(model.base_pipeline.components)
        components["scheduler"] = diffusers.FlowMatchEulerDiscreteScheduler(shift=model.family.scheduling.shift)
        bare_pipe = diffusers.ZImagePipeline(**components)
        bare_pipe.set_progress_bar_config(disable=True)
        device = bare_pipe.transformer.device

        def bare() -> None:
            with torch.no_grad():
                bare_pipe(PROMPT, num_inference_steps=steps, height=size, width=size, guidance_scale=0.0,
                          generator=torch.Generator(str(device)).manual_seed(1))

        bare()
        runs["bare"] = bare
    except Exception as error:  # the bare figure is a comparison only: keep ours when it cannot run
        bare_error = f"{type(error).__name__}: {error}"[:300]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for index in range(repeats):
        order = list(runs.items()) if index % 2 == 0 else list(reversed(runs.items()))
        for name, run in order:
            sync()
            started = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - started)
    state.queue.shutdown()
    result: dict[str, Any] = {
        "size": size, "steps": steps, "first_call_s": round(first_s, 2), "ours_s": round(statistics.median(times["ours"]), 3),
        "runs": {name: [round(value, 3) for value in values] for name, values in times.items()},
        "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
        "goal_s": 3.0, "infotext": (first.info or {}).get("infotexts", [""])[0][:300] if hasattr(first, "info") else "",
    }
    if "bare" in times:
        result["bare_s"] = round(statistics.median(times["bare"]), 3)
        result["ratio"] = round(result["ours_s"] / result["bare_s"], 3)
    if bare_error:
        result["bare_error"] = bare_error
    if cuda:
        result["peak_vram_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the data dir (default: a temp folder)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    data = (args.out or Path(tempfile.mkdtemp(prefix="zimage-bench-"))) / "data"
    from sdweb.runtime.policy import probe_hardware

    device = "cuda" if probe_hardware().cuda_devices else "cpu"
    started = time.perf_counter()
    file_gb = write_files(data, args.tiny, device)
    written_s = time.perf_counter() - started
    size, steps = (64, 2) if args.tiny else (1024, 8)
    result = {"file_gb": round(file_gb, 2), "write_s": round(written_s, 1)} | measure(data, size, steps, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
