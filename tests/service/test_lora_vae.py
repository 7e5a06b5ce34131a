"""VAE selection and LoRA application on tiny real-format files, through the generation service."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import safetensors.torch
import torch

from sdweb.cli import parse_options
from sdweb.core.errors import InvalidModelFileError, NotFoundError
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.models.lora import lora_base_of, lora_module_count
from sdweb.models.registry import ModelRegistry
from sdweb.models.vae import choose_vae
from sdweb.state import build_app_state
from sdweb.testing.tiny import build_tiny_pipeline, build_tiny_vae, write_tiny
from sdweb.testing.tiny_configs import VAE_CONFIG

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 3, "cfg_scale": 5.0}


def _kohya_lora(pipe, unet_targets, te_layers, te_suffixes, te_prefix="lora_te", encoder="text_encoder",
                seed=0, extra_te=None):
    """A kohya-format LoRA for the modules of this pipeline (rank 4)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    modules = [(f"lora_unet_{name.replace('.', '_')}", dict(pipe.unet.named_modules())[name]) for name in unet_targets]
    te_modules = dict(getattr(pipe, encoder).named_modules())
    prefix = "text_model." if any(k.startswith("text_model.") for k in te_modules) else ""
    for layer in range(te_layers):
        for suffix in te_suffixes:
            name = f"{prefix}encoder.layers.{layer}.{suffix}"
            kohya = f"{te_prefix}_text_model_encoder_layers_{layer}_{suffix.replace('.', '_')}"
            modules.append((kohya, te_modules[name]))
    for kohya, module in modules + list(extra_te or []):
        if isinstance(module, torch.nn.Conv2d):
            down, up = (4, module.in_channels, *module.kernel_size), (module.out_channels, 4, 1, 1)
        else:
            down, up = (4, module.in_features), (module.out_features, 4)
        tensors[f"{kohya}.lora_down.weight"] = torch.randn(down, generator=generator).half() * 0.2
        tensors[f"{kohya}.lora_up.weight"] = torch.randn(up, generator=generator).half() * 0.2
        tensors[f"{kohya}.alpha"] = torch.tensor(4.0).half()
    return tensors


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    models = data / "models"
    write_tiny("sd1", models / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    write_tiny("vae", models / "VAE" / "bare-ldm.safetensors", seed=7)
    write_tiny("sd1", models / "VAE" / "checkpoint-as-vae.safetensors", seed=7)
    vae = build_tiny_vae(7)
    safetensors.torch.save_file({k: v.half().contiguous() for k, v in vae.state_dict().items()},
                                models / "VAE" / "diffusers-layout.safetensors")
    from sdweb.models.ldm_convert import vae_to_ldm

    wide = build_tiny_vae(2, VAE_CONFIG | {"latent_channels": 16})
    safetensors.torch.save_file({k: v.half().contiguous() for k, v in
                                 vae_to_ldm(wide.state_dict(), wide.config, prefix="").items()},
                                models / "VAE" / "sd3-like.safetensors")
    write_tiny("lora", models / "VAE" / "a-lora.safetensors", seed=1)  # a LoRA chosen as VAE by mistake
    lora = models / "Lora"
    write_tiny("lora", lora / "my_lora_file.safetensors", seed=1)  # alias (ss_output_name) "tiny-lora"
    write_tiny("lora", lora / "second.safetensors", seed=2)
    sd1 = build_tiny_pipeline("sd1", 1)
    # the pitfall of diffusers-offline.md §5: q/k/v without out_proj in the text encoder
    safetensors.torch.save_file(_kohya_lora(sd1, ["up_blocks.1.attentions.0.proj_in"], 2,
                                            ["self_attn.q_proj", "self_attn.k_proj", "mlp.fc1"]),
                                lora / "partial-te.safetensors")
    bad = _kohya_lora(sd1, ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"], 0, [])
    bad = {k: (torch.zeros(4, 7).half() if k.endswith("lora_down.weight") else v) for k, v in bad.items()}
    safetensors.torch.save_file(bad, lora / "wrong-shapes.safetensors")
    safetensors.torch.save_file({"lora_unet_nothing_here.lora_down.weight": torch.zeros(4, 8).half(),
                                 "lora_unet_nothing_here.lora_up.weight": torch.zeros(8, 4).half()},
                                lora / "matches-nothing.safetensors")
    sdxl = build_tiny_pipeline("sdxl", 1)
    xl = _kohya_lora(sdxl, ["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"], 1,
                     ["self_attn.q_proj"], te_prefix="lora_te1")
    safetensors.torch.save_file(xl, lora / "sdxl-style.safetensors")
    safetensors.torch.save_file(_kohya_lora(sd1, ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"], 0,
                                            []), lora / "declared-sdxl.safetensors",
                                metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    safetensors.torch.save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a": torch.zeros(4, 4).half(),
                                 "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_b": torch.zeros(4, 4).half()},
                                lora / "loha.safetensors")
    return data


@pytest.fixture(scope="module")
def state(files):
    app_state = build_app_state(parse_options(["--data-dir", str(files)], {}))
    yield app_state
    app_state.queue.shutdown()


def _run(state, prompt="a cat", **overrides):
    request = Txt2ImgRequest(prompt=prompt, override_settings=overrides, **SMALL)
    result = state.service.txt2img(request, None, NO_SAVE)
    return np.asarray(result.images[0], dtype=np.int16), result


@pytest.fixture(scope="module")
def base(state):
    return _run(state, sd_vae="None")[0]


def _params(result) -> str:
    return result.infotexts[0].splitlines()[-1]


# ------------------------------------------------------------------------------------------------ VAE


def test_vae_rules(files, tmp_path):
    registry = ModelRegistry(build_app_state(parse_options(["--data-dir", str(files)], {})).paths)
    registry.refresh_all()
    entry = registry.checkpoints[0]
    assert choose_vae(registry, entry, "None", None).file is None
    assert choose_vae(registry, entry, "Automatic", None).file is None  # nothing named like the checkpoint
    assert choose_vae(registry, entry, "bare-ldm.safetensors", None).file.name == "bare-ldm.safetensors"
    assert choose_vae(registry, entry, "bare-ldm", None).file.name == "bare-ldm.safetensors"  # stem
    unknown = choose_vae(registry, entry, "nope.pt", None)
    assert unknown.file is None and "nope.pt" in unknown.note and "bare-ldm.safetensors" in unknown.note
    forced = choose_vae(registry, entry, "None", str(files / "models" / "VAE" / "bare-ldm.safetensors"))
    assert forced.file.name == "bare-ldm.safetensors" and forced.source == "--vae-path"
    with pytest.raises(InvalidModelFileError, match="--vae-path"):
        choose_vae(registry, entry, "None", str(tmp_path / "missing.pt"))


def test_automatic_finds_the_vae_beside_the_checkpoint_then_in_the_vae_folder(tmp_path):
    data = tmp_path / "data"
    checkpoints, vaes = data / "models" / "Stable-diffusion", data / "models" / "VAE"
    write_tiny("sd1", checkpoints / "model.safetensors", seed=1)
    write_tiny("vae", vaes / "model.vae.pt", seed=7, fmt="ckpt")
    registry = ModelRegistry(build_app_state(parse_options(["--data-dir", str(data)], {})).paths)
    registry.refresh_all()
    entry = registry.checkpoints[0]
    assert choose_vae(registry, entry, "Automatic", None).file.path == vaes / "model.vae.pt"
    write_tiny("vae", checkpoints / "model.vae.safetensors", seed=7)
    registry.refresh_all()
    chosen = choose_vae(registry, entry, "Automatic", None)
    assert chosen.file.path == checkpoints / "model.vae.safetensors" and chosen.source == "automatic"


def test_vae_choice_changes_the_decode_and_none_restores_it(state, base, files):
    model = state.manager.get(None)
    unet = model.base_pipeline.unet
    swapped, result = _run(state, sd_vae="bare-ldm.safetensors")
    assert np.abs(swapped - base).max() > 10
    digest = hashlib.sha256((files / "models" / "VAE" / "bare-ldm.safetensors").read_bytes()).hexdigest()
    assert f"VAE hash: {digest[:10]}, VAE: bare-ldm.safetensors" in _params(result)
    assert result.info["sd_vae_name"] == "bare-ldm.safetensors" and result.info["sd_vae_hash"] == digest[:10]
    assert state.manager.get(None) is model and model.base_pipeline.unet is unet  # no reload
    assert model.pipeline("img2img").vae is model.base_pipeline.vae  # every mode decodes with it
    restored, result = _run(state, sd_vae="None")
    assert np.array_equal(restored, base) and "VAE" not in _params(result)
    assert model.vae is None and model.own_vae is None


@pytest.mark.parametrize("name", ["checkpoint-as-vae.safetensors", "diffusers-layout.safetensors"])
def test_every_vae_layout_gives_the_same_weights(state, name):
    reference = _run(state, sd_vae="bare-ldm.safetensors")[0]
    assert np.array_equal(_run(state, sd_vae=name)[0], reference)


@pytest.mark.parametrize(("name", "message"), [
    ("sd3-like.safetensors", "16 latent channels"),
    ("a-lora.safetensors", "looks like a LoRA"),
])
def test_a_vae_that_does_not_fit_is_a_clear_error(state, base, name, message):
    with pytest.raises(InvalidModelFileError, match=message) as error:
        _run(state, sd_vae=name)
    assert name in error.value.message
    assert np.array_equal(_run(state, sd_vae="None")[0], base)


def test_a_stored_vae_whose_file_is_gone_uses_the_checkpoints_own_with_a_note(state, base):
    """A1111's "Couldn't find VAE named ...": the chosen file was deleted since; a new unknown name is refused."""
    soon_gone = state.paths.vae / "soon-gone.safetensors"
    soon_gone.write_bytes((state.paths.vae / "bare-ldm.safetensors").read_bytes())
    state.registry.refresh_vaes()
    state.settings.update({"sd_vae": "soon-gone.safetensors"}, save=False)
    try:
        soon_gone.unlink()
        state.registry.refresh_vaes()
        image, result = _run(state)
        assert np.array_equal(image, base)
        assert any("soon-gone.safetensors" in note for note in result.notes)
        with pytest.raises(NotFoundError, match="missing.safetensors"):
            _run(state, sd_vae="missing.safetensors")
    finally:
        state.settings.update({"sd_vae": "Automatic"}, save=False)


# ----------------------------------------------------------------------------------------------- LoRA


def test_lora_weight_zero_is_no_lora_one_changes_and_removal_restores(state, base):
    zero, _ = _run(state, "a cat <lora:my_lora_file:0>", sd_vae="None")
    assert np.array_equal(zero, base)
    one, result = _run(state, "a cat <lora:my_lora_file:1>", sd_vae="None")
    assert np.abs(one - base).max() > 10
    assert result.prompts[0] == "a cat <lora:my_lora_file:1>"  # tags stay in the infotext prompt
    after, _ = _run(state, "a cat", sd_vae="None")
    assert np.array_equal(after, base)


def test_text_encoder_and_unet_weights_are_separate(state, base):
    te_only = _run(state, "a cat <lora:my_lora_file:1:0>", sd_vae="None")[0]
    unet_only = _run(state, "a cat <lora:my_lora_file:0:1>", sd_vae="None")[0]
    both = _run(state, "a cat <lora:my_lora_file:1:1>", sd_vae="None")[0]
    named = _run(state, "a cat <lora:my_lora_file:te=0:unet=1>", sd_vae="None")[0]
    assert np.array_equal(named, unet_only)
    for image in (te_only, unet_only):
        assert np.abs(image - base).max() > 0 and np.abs(image - both).max() > 0


def test_lora_by_alias_hash_in_infotext_and_cache(state, files):
    path = files / "models" / "Lora" / "my_lora_file.safetensors"
    raw = path.read_bytes()
    header = int.from_bytes(raw[:8], "little")
    addnet = hashlib.sha256(raw[8 + header:]).hexdigest()[:12]
    _, result = _run(state, "a cat <lora:tiny-lora:0.5>, <lora:second:0.3>", sd_vae="None")
    assert f'Lora hashes: "tiny-lora: {addnet}, second: ' in _params(result)
    model = state.manager.get(None)
    adapter = model.loras.adapters[path]
    _run(state, "a dog <lora:my_lora_file:0.7>", sd_vae="None")
    assert model.loras.adapters[path] is adapter  # not read again
    assert set(model.base_pipeline.get_list_adapters()["unet"]) >= {adapter.adapter}


def test_changed_lora_file_is_read_again(state, files, tmp_path):
    path = files / "models" / "Lora" / "second.safetensors"
    _run(state, "a cat <lora:second:1>", sd_vae="None")
    model = state.manager.get(None)
    first = model.loras.adapters[path]
    write_tiny("lora", path, seed=3)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    _run(state, "a cat <lora:second:1>", sd_vae="None")
    assert model.loras.adapters[path] is not first
    assert first.adapter in model.base_pipeline.get_list_adapters()["unet"]  # same name, new weights


def test_unknown_lora_is_skipped_with_a_note_naming_close_ones(state, base):
    image, result = _run(state, "a cat <lora:my_lora_fil:1>", sd_vae="None")
    assert np.array_equal(image, base)
    assert any(note.startswith("Lora not found: my_lora_fil") and "my_lora_file" in note for note in result.notes)


def test_partial_text_encoder_coverage_is_reported(state):
    _, result = _run(state, "a cat <lora:partial-te:1>", sd_vae="None")
    assert any("partial-te" in note and "of its 7 layers" in note for note in result.notes), result.notes


@pytest.mark.parametrize(("name", "message"), [
    ("sdxl-style", "is a LoRA for SDXL; the loaded checkpoint is SD 1.x"),
    ("declared-sdxl", "is a LoRA for SDXL"),
    ("wrong-shapes", "does not fit the loaded checkpoint"),
    ("matches-nothing", "does not fit the loaded checkpoint|matches no layer"),
    ("loha", "LyCORIS"),
])
def test_a_lora_that_does_not_fit_is_a_clear_error(state, base, name, message):
    with pytest.raises(InvalidModelFileError, match=message) as error:
        _run(state, f"a cat <lora:{name}:1>", sd_vae="None")
    assert f"{name}.safetensors" in error.value.message
    model = state.manager.get(None)
    assert not any(name in adapter for adapter in model.base_pipeline.get_list_adapters().get("unet", []))
    assert np.array_equal(_run(state, "a cat", sd_vae="None")[0], base)


def test_lora_base_detection_table():
    assert lora_base_of(["lora_te1_x.lora_down.weight"], {}) == "sdxl"
    assert lora_base_of(["lora_te_x.lora_down.weight"], {}) is None
    assert lora_base_of([], {"ss_base_model_version": "sd_v1"}) == "sd1"
    assert lora_base_of([], {"ss_base_model_version": "sd_v2_768_v"}) == "sd2"
    assert lora_base_of([], {"ss_v2": "True"}) == "sd2"
    assert lora_base_of([], {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}) == "sdxl"
    assert lora_module_count(["a.lora_down.weight", "a.lora_up.weight", "a.alpha", "b.lora_A.weight"]) == 2
