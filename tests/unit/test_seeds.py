"""Seeds and A1111's noise rules (ImageRNG), and the NV source (CUDA's Philox4x32 + Box–Muller on the CPU)."""

import numpy as np
import pytest
import torch

from sdweb.generation.seeds import MAX_RANDOM_SEED, plan_seeds, resolve_seed
from sdweb.samplers import philox
from sdweb.samplers.rng import ImageRNG, randn, slerp

SHAPE = (4, 8, 8)


def first_noise(seeds, subseeds=(), strength=0.0, resize_from=None, source="CPU", shape=SHAPE):
    return ImageRNG(shape, seeds, subseeds=subseeds, subseed_strength=strength, seed_resize_from=resize_from,
                    source=source).next()


def test_random_seed_resolution():
    for value in (-1, None, "", "abc"):
        seed = resolve_seed(value)
        assert 0 <= seed < MAX_RANDOM_SEED
    assert resolve_seed(42) == 42 and resolve_seed("7") == 7


def test_batch_seeds_increment_unless_variation():
    assert plan_seeds(100, 5, 0.0, 4).seeds == (100, 101, 102, 103)
    varied = plan_seeds(100, 5, 0.3, 4)
    assert varied.seeds == (100, 100, 100, 100) and varied.subseeds == (5, 6, 7, 8)
    assert plan_seeds(100, 5, 0.0, 4).for_batch(1, 2) == ([102, 103], [7, 8])


def test_image_in_batch_equals_image_alone_for_every_draw():
    batch = ImageRNG(SHAPE, [10, 11, 12, 13], source="CPU")
    alone = ImageRNG(SHAPE, [13], source="CPU")
    for _ in range(3):  # initial noise, then two sampler draws continuing the same generators
        assert torch.equal(batch.next()[3], alone.next()[0])


def test_sampler_noise_continues_the_seed_generator():
    rng = ImageRNG(SHAPE, [7], source="CPU")
    generator = torch.Generator().manual_seed(7)
    assert torch.equal(rng.next()[0], torch.randn(SHAPE, generator=generator))
    assert torch.equal(rng.next()[0], torch.randn(SHAPE, generator=generator))


def test_eta_noise_seed_delta_reseeds_after_the_initial_noise():
    rng = ImageRNG(SHAPE, [7], eta_noise_seed_delta=31337, source="CPU")
    assert torch.equal(rng.next()[0], torch.randn(SHAPE, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(rng.next()[0], torch.randn(SHAPE, generator=torch.Generator().manual_seed(7 + 31337)))


def test_variation_strength_endpoints():
    base = first_noise([1], [2], 0.0)
    full = first_noise([1], [2], 1.0)
    assert torch.allclose(full, first_noise([2]), atol=1e-5)
    half = first_noise([1], [2], 0.5)
    assert not torch.allclose(half, base) and not torch.allclose(half, full)


def test_slerp_parallel_falls_back_to_blend():
    low = torch.ones(4, 3, 3)
    assert torch.allclose(slerp(0.25, low, low), low)


def test_resize_seed_from_keeps_the_centre():
    small = first_noise([5])[0]
    big = first_noise([5], resize_from=(64, 64), shape=(4, 16, 16))[0]
    assert torch.equal(big[:, 4:12, 4:12], small)
    cropped = first_noise([5], resize_from=(64, 64), shape=(4, 4, 4))[0]
    assert torch.equal(cropped, small[:, 2:6, 2:6])


def test_resize_with_odd_difference_follows_a1111():
    """A1111 pastes 2*dx narrower when the source is wider by an odd amount (floor division)."""
    noise = first_noise([5], resize_from=(104, 64), shape=(4, 8, 10))[0]  # source 13 wide, target 10
    source = randn(5, (4, 8, 13), "CPU", "cpu")
    assert torch.equal(noise[:, :, 0:9], source[:, :, 2:11])
    own = torch.randn((4, 8, 10), generator=torch.Generator().manual_seed(5))
    assert torch.equal(noise[:, :, 9], own[:, :, 9])


def test_gpu_source_without_cuda_is_the_cpu_generator():
    assert torch.equal(first_noise([3], source="GPU"), first_noise([3], source="CPU"))


# Published CUDA values: the docstring of modules/rng_philox.py in AUTOMATIC1111/stable-diffusion-webui gives
# the output of torch.randn((3, 4)) for a CUDA generator seeded with 0 (the same numbers PyTorch users quote
# for torch.manual_seed(0); torch.randn(4, device="cuda"): -0.9247, -0.4253, -2.6438, 0.1452).
CUDA_SEED_0 = np.array([[-0.92466259, -0.42534415, -2.6438457, 0.14518388],
                        [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
                        [-1.07454231, -0.36314407, -1.67105067, 2.26550497]])


def test_nv_philox_gives_cudas_published_numbers():
    values = philox.Generator(0).randn((3, 4))
    assert values.dtype == np.float32
    # within a few float32 ulps: the reference rounds its float64 Box-Muller, CUDA computes in float32
    assert np.abs(values - CUDA_SEED_0).max() < 1e-6


def test_nv_philox_offsets_and_seeds():
    generator = philox.Generator(0)
    first, second = generator.randn((8,)), generator.randn((8,))
    assert not np.array_equal(first, second)  # each call advances the Philox offset
    assert np.array_equal(philox.Generator(0).randn((8,)), first)
    assert not np.array_equal(philox.Generator(1).randn((8,)), first)
    big = philox.Generator(2**40 + 5).randn((4, 16, 16))  # seeds over 32 bits use the key's high word
    assert big.shape == (4, 16, 16) and abs(float(big.mean())) < 0.2 and abs(float(big.std()) - 1) < 0.1


def test_nv_source_in_image_rng():
    noise = first_noise([0], source="NV", shape=(3, 4))
    assert torch.equal(noise[0], torch.from_numpy(philox.Generator(0).randn((3, 4))))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nv_matches_torch_randn_on_cuda():
    for seed, shape in ((0, (3, 4)), (12345, (4, 64, 64)), (2**33 + 7, (4, 128, 96))):
        generator = philox.Generator(seed)
        cuda = torch.Generator("cuda").manual_seed(seed)
        for _ in range(2):  # the first draw and a continued one
            expected = torch.randn(shape, generator=cuda, device="cuda").cpu().numpy()
            assert np.abs(generator.randn(shape) - expected).max() < 1e-5


def test_latent_preview_shape_and_range():
    from sdweb.generation.previews import latent_preview
    from sdweb.models.families import SD1_PREVIEW_RGB, SDXL_PREVIEW_RGB

    latents = torch.randn(2, 4, 8, 6)
    image = latent_preview(latents, SD1_PREVIEW_RGB, index=1)
    assert image.size == (48, 64) and image.mode == "RGB"
    assert latent_preview(latents, SDXL_PREVIEW_RGB).size == (48, 64)
