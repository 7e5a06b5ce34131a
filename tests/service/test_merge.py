"""Checkpoint Merger on tiny SD1 checkpoints in the real file formats: the arithmetic, fp16, baking a VAE, A1111's
metadata and names, the inpainting rules, refusals that name the problem, and a result that loads."""

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

from sdweb.core.errors import UserError
from sdweb.models.loader import load_checkpoint, read_state_dict
from sdweb.models.merge import MergeInput, MergePlan, default_name, run_merge
from sdweb.testing.tiny import write_tiny

KEY = "model.diffusion_model.input_blocks.0.0.weight"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("merge")
    write_tiny("sd1", folder / "a.safetensors", seed=1)
    write_tiny("sd1", folder / "b.safetensors", seed=2)
    write_tiny("sd1", folder / "c.ckpt", seed=3, fmt="ckpt")
    write_tiny("sd1-inpaint", folder / "inpaint.safetensors", seed=4)
    write_tiny("sdxl", folder / "xl.safetensors", seed=5)
    write_tiny("vae", folder / "baked.vae.safetensors", seed=6)
    (folder / "a.yaml").write_text("model: {}\n")
    return folder


def _input(folder: Path, name: str) -> MergeInput:
    return MergeInput(path=folder / name, name=name, model_name=Path(name).stem, sha256=f"{name}-sha",
                      legacy_hash="12345678")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return {key: value.float() for key, value in read_state_dict(path).items()}


def test_weighted_sum_is_a_times_one_minus_m_plus_b_times_m(models, tmp_path):
    plan = MergePlan(_input(models, "a.safetensors"), _input(models, "b.safetensors"), multiplier=0.25)
    out = run_merge(plan, tmp_path)
    assert out.name == "0.75(a) + 0.25(b).safetensors" == f"{default_name(plan)}.safetensors"
    a, b, merged = _tensors(models / "a.safetensors"), _tensors(models / "b.safetensors"), _tensors(out)
    assert set(merged) == set(a)
    for key in (KEY, "first_stage_model.decoder.conv_in.weight"):
        assert torch.allclose(merged[key], a[key] * 0.75 + b[key] * 0.25, atol=2e-3)


def test_add_difference_with_a_ckpt_c_in_float16_with_a_baked_vae(models, tmp_path):
    plan = MergePlan(_input(models, "a.safetensors"), _input(models, "b.safetensors"), _input(models, "c.ckpt"),
                     method="Add difference", multiplier=0.5, save_as_half=True,
                     bake_in_vae=models / "baked.vae.safetensors", custom_name="mix")
    out = run_merge(plan, tmp_path)
    a, b, c = (_tensors(models / name) for name in ("a.safetensors", "b.safetensors", "c.ckpt"))
    raw = safetensors.torch.load_file(out)
    assert {tensor.dtype for tensor in raw.values() if tensor.is_floating_point()} == {torch.float16}
    assert torch.allclose(raw[KEY].float(), a[KEY] + (b[KEY] - c[KEY]) * 0.5, atol=2e-3)
    vae = _tensors(models / "baked.vae.safetensors")
    vae_key = next(iter(vae))
    inner = vae_key.removeprefix("first_stage_model.")
    assert torch.allclose(raw[f"first_stage_model.{inner}"].float(), vae[vae_key], atol=2e-3)
    metadata = safetensors.safe_open(str(out), "pt").metadata()
    recipe = json.loads(metadata["sd_merge_recipe"])
    assert recipe["interp_method"] == "Add difference" and recipe["bake_in_vae"] == "baked.vae.safetensors"
    assert recipe["primary_model_hash"] == "a.safetensors-sha" and metadata["format"] == "pt"
    assert set(json.loads(metadata["sd_merge_models"])) == {"a.safetensors-sha", "b.safetensors-sha", "c.ckpt-sha"}
    assert (tmp_path / "mix.yaml").read_text() == "model: {}\n"  # copied from A


def test_the_result_loads_as_a_checkpoint(models, tmp_path):
    out = run_merge(MergePlan(_input(models, "a.safetensors"), _input(models, "b.safetensors"), multiplier=0.5,
                              save_metadata=False), tmp_path)
    loaded = load_checkpoint(out, config_cache_dir=tmp_path / "configs")
    assert loaded.family.base == "sd1"
    assert "sd_merge_recipe" not in (safetensors.safe_open(str(out), "pt").metadata() or {})


def test_no_interpolation_resaves_a_and_discards_weights_by_name(models, tmp_path):
    out = run_merge(MergePlan(_input(models, "a.safetensors"), method="No interpolation",
                              discard_weights=r"^model_ema\.|position_ids"), tmp_path)
    assert out.name == "a.safetensors"
    a, merged = _tensors(models / "a.safetensors"), _tensors(out)
    assert set(merged) == {key for key in a if "position_ids" not in key}
    assert torch.equal(merged[KEY], a[KEY])


def test_an_inpainting_a_merges_the_four_channels_it_shares_with_b(models, tmp_path):
    out = run_merge(MergePlan(_input(models, "inpaint.safetensors"), _input(models, "b.safetensors"),
                              multiplier=0.5), tmp_path)
    assert out.name.endswith(".inpainting.safetensors")
    a, b, merged = _tensors(models / "inpaint.safetensors"), _tensors(models / "b.safetensors"), _tensors(out)
    assert merged[KEY].shape[1] == 9
    assert torch.allclose(merged[KEY][:, :4], a[KEY][:, :4] * 0.5 + b[KEY] * 0.5, atol=2e-3)
    assert torch.allclose(merged[KEY][:, 4:], a[KEY][:, 4:], atol=2e-3)


@pytest.mark.parametrize(("plan_args", "message"), [
    ({"secondary": "inpaint.safetensors"}, "A must be the inpainting model"),
    ({"secondary": "xl.safetensors"}, "different families"),
    ({"method": "Add difference", "secondary": "b.safetensors"}, "needs a tertiary model"),
    ({"method": "Weighted sum"}, "needs a secondary model"),
    ({"secondary": "b.safetensors", "discard_weights": "(unclosed"}, "not a regular expression"),
    ({"secondary": "b.safetensors", "custom_name": "../escape"}, "cannot be a file name"),
])
def test_refusals_name_the_problem_and_write_nothing(models, tmp_path, plan_args, message):
    args = dict(plan_args)
    secondary = args.pop("secondary", None)
    plan = MergePlan(_input(models, "a.safetensors"), _input(models, secondary) if secondary else None, **args)
    with pytest.raises(UserError, match=message):
        run_merge(plan, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_never_overwritten(models, tmp_path):
    (tmp_path / "taken.safetensors").write_bytes(b"the user's own file")
    plan = MergePlan(_input(models, "a.safetensors"), _input(models, "b.safetensors"), custom_name="taken")
    with pytest.raises(UserError, match="already exists"):
        run_merge(plan, tmp_path)
    assert (tmp_path / "taken.safetensors").read_bytes() == b"the user's own file"


def test_an_interrupted_merge_leaves_no_file(models, tmp_path):
    class Stop(Exception):
        pass

    def progress(done: int, total: int) -> None:
        if done == 10:
            raise Stop

    with pytest.raises(Stop):
        run_merge(MergePlan(_input(models, "a.safetensors"), _input(models, "b.safetensors")), tmp_path, progress)
    assert list(tmp_path.iterdir()) == []
