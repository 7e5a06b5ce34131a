"""The generation service on tiny real-format models: seeds, variations, samplers, inpaint, tiling, queue."""

import threading

import numpy as np
import pytest
from PIL import Image

from sdweb.cli import parse_options
from sdweb.core.errors import NotFoundError
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.samplers.table import SAMPLERS
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 3, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    app_state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    yield app_state
    app_state.queue.shutdown()


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_image_alone_equals_image_in_a_batch(state):
    batch = state.service.txt2img(Txt2ImgRequest(prompt="a cat", seed=100, batch_size=4, **SMALL), None, NO_SAVE)
    alone = state.service.txt2img(Txt2ImgRequest(prompt="a cat", seed=103, **SMALL), None, NO_SAVE)
    assert batch.seeds == [100, 101, 102, 103]
    # CPU kernels may round a batched convolution differently from a single one: one level at most.
    assert np.abs(_pixels(batch.images[3]) - _pixels(alone.images[0])).max() <= 1
    assert not np.array_equal(_pixels(batch.images[0]), _pixels(batch.images[1]))


def test_variation_strength_endpoints(state):
    def run(strength, seed=5, subseed=9):
        request = Txt2ImgRequest(prompt="a cat", seed=seed, subseed=subseed, subseed_strength=strength, **SMALL)
        return _pixels(state.service.txt2img(request, None, NO_SAVE).images[0])

    base, sub = run(0.0), run(0.0, seed=9)
    assert np.array_equal(run(0.0, subseed=123), base)
    assert np.abs(run(1.0) - sub).max() <= 1
    assert not np.array_equal(run(0.5), base)


@pytest.mark.parametrize("sampler", [s.name for s in SAMPLERS])
def test_every_sampler_runs_and_is_finite(state, sampler):
    request = Txt2ImgRequest(prompt="a cat", seed=1, **{**SMALL, "sampler_name": sampler})
    result = state.service.txt2img(request, None, NO_SAVE)
    assert result.images[0].size == (64, 64)
    assert f"Sampler: {sampler}," in result.infotexts[0]
    assert np.isfinite(_pixels(result.images[0])).all() and _pixels(result.images[0]).std() > 0


def test_unknown_sampler_lists_valid_names(state):
    with pytest.raises(NotFoundError) as error:
        state.service.txt2img(Txt2ImgRequest(**{**SMALL, "sampler_name": "Eulr"}), None, NO_SAVE)
    assert "Eulr" in str(error.value) and "DPM++ 2M" in str(error.value)


def test_inpaint_black_mask_keeps_pixels_and_only_masked_pastes_back(state):
    init = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    black = Image.new("L", (64, 64), 0)
    result = state.service.img2img(Img2ImgRequest(init_images=[init], mask=black, mask_blur_x=0, mask_blur_y=0,
                                                  **SMALL), None, NO_SAVE)
    assert np.array_equal(_pixels(result.images[0]), _pixels(init))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (40, 40, 56, 56))
    masked = state.service.img2img(Img2ImgRequest(init_images=[init], mask=mask, inpaint_full_res=True,
                                                  inpaint_full_res_padding=4, mask_blur_x=0, mask_blur_y=0,
                                                  denoising_strength=1.0, **SMALL), None, NO_SAVE)
    out = _pixels(masked.images[0])
    assert np.array_equal(out[:30, :30], _pixels(init)[:30, :30]), "outside the padded crop nothing changes"
    assert not np.array_equal(out[44:52, 44:52], _pixels(init)[44:52, 44:52])


def _edge_mismatch(image: Image.Image) -> float:
    pixels = _pixels(image).astype(float)
    return float(np.abs(pixels[:, 0] - pixels[:, -1]).mean())


def test_tiling_wraps_better_than_plain(state):
    plain = state.service.txt2img(Txt2ImgRequest(prompt="x", seed=2, **SMALL), None, NO_SAVE).images[0]
    tiled = state.service.txt2img(Txt2ImgRequest(prompt="x", seed=2, tiling=True, **SMALL), None, NO_SAVE)
    assert "Tiling: True" in tiled.infotexts[0]
    assert _edge_mismatch(tiled.images[0]) < _edge_mismatch(plain)


def test_prompt_editing_changes_the_image(state):
    same = state.service.txt2img(Txt2ImgRequest(prompt="a cat", seed=4, **SMALL), None, NO_SAVE).images[0]
    edited = state.service.txt2img(Txt2ImgRequest(prompt="a [cat:dog:1]", seed=4, **SMALL), None, NO_SAVE)
    assert not np.array_equal(_pixels(same), _pixels(edited.images[0]))
    assert edited.infotexts[0].startswith("a [cat:dog:1]\n")


def test_twenty_jobs_from_four_threads_finish_in_order_and_are_saved_once(state):
    jobs, lock = [], threading.Lock()

    def client(worker):
        for index in range(5):
            request = Txt2ImgRequest(prompt=f"job {worker}-{index}", seed=1000 + worker * 10 + index,
                                     **{**SMALL, "steps": 1})
            with lock:
                jobs.append(state.submit("txt2img", request, SaveOptions()))

    threads = [threading.Thread(target=client, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [job.wait(300) for job in jobs]
    finished = [job.finished_at for job in jobs]
    assert finished == sorted(finished), "jobs finish in submission order"
    saved = [path for result in results for path in result.saved_paths]
    assert len(saved) == 20 and len(set(saved)) == 20
    for result, path in zip(results, saved, strict=True):
        assert Image.open(path).info["parameters"] == result.infotexts[0]


@pytest.mark.parametrize(("upscaler", "extra", "size"), [
    ("Latent", {"hr_scale": 1.5}, (96, 96)),
    ("Lanczos", {"hr_resize_x": 128, "hr_resize_y": 64}, (128, 64)),
])
def test_hires_fix_gives_the_requested_size(state, upscaler, extra, size):
    request = Txt2ImgRequest(prompt="a cat", seed=8, enable_hr=True, hr_upscaler=upscaler, hr_second_pass_steps=2,
                             denoising_strength=0.5, **SMALL, **extra)
    result = state.service.txt2img(request, None, NO_SAVE)
    assert result.images[0].size == size
    infotext = result.infotexts[0]
    assert "Size: 64x64" in infotext and "Denoising strength: 0.5" in infotext
    assert f"Hires upscaler: {upscaler}" in infotext and "Hires steps: 2" in infotext


def test_unknown_hires_upscaler_is_a_user_error(state):
    from sdweb.core.errors import UserError

    with pytest.raises(UserError, match="4x-Nope"):
        state.service.txt2img(Txt2ImgRequest(enable_hr=True, hr_upscaler="4x-Nope", **SMALL), None, NO_SAVE)


def test_out_of_memory_is_a_clear_error_and_the_next_job_works(state, monkeypatch):
    import torch

    from sdweb.core.errors import UserError
    from sdweb.generation import service as service_module

    real_run_batch = service_module.run_batch

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(service_module, "run_batch", exhausted)
    with pytest.raises(UserError, match="Out of memory") as error:
        state.service.txt2img(Txt2ImgRequest(**SMALL), None, NO_SAVE)
    assert "--medvram" in error.value.hint
    monkeypatch.setattr(service_module, "run_batch", real_run_batch)
    assert state.service.txt2img(Txt2ImgRequest(**SMALL), None, NO_SAVE).images


def test_masked_content_latent_noise_and_latent_nothing(state):
    init = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    results = {}
    for fill in (1, 2, 3):
        request = Img2ImgRequest(init_images=[init], mask=mask, inpainting_fill=fill, mask_blur_x=0, mask_blur_y=0,
                                 denoising_strength=0.6, seed=8, **SMALL)
        result = state.service.img2img(request, None, NO_SAVE)
        assert not any("not supported" in note for note in result.notes)
        results[fill] = _pixels(result.images[0])
    for fill in (2, 3):
        assert np.array_equal(results[fill][:12], results[1][:12]), "outside the mask the picture is kept"
        assert np.abs(results[fill][20:44, 20:44] - results[1][20:44, 20:44]).mean() > 1
    assert np.abs(results[2][20:44, 20:44] - results[3][20:44, 20:44]).mean() > 1


def test_latent_fill_replaces_only_inside_the_mask():
    import torch

    from sdweb.generation.img2img_inputs import latent_fill

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # left half at latent size: columns 0-3 of 8
    noise = torch.randn(1, 4, 8, 8)
    latents = torch.full((2, 4, 8, 8), 3.0)
    assert latent_fill(1, mask, noise) is None and latent_fill(0, mask, noise) is None
    nothing = latent_fill(3, mask, noise)(latents)
    assert torch.all(nothing[..., :4] == 0) and torch.all(nothing[..., 4:] == 3)
    noisy = latent_fill(2, mask, noise)(latents)
    assert torch.equal(noisy[1, :, :, :4], noise[0, :, :, :4]) and torch.all(noisy[..., 4:] == 3)
