import torch

from sdweb.generation.seeds import MAX_RANDOM_SEED, batch_noise, image_noise, plan_seeds, resolve_seed, slerp

SHAPE = (4, 8, 8)


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


def test_image_in_batch_equals_image_alone():
    batch = batch_noise(SHAPE, [10, 11, 12, 13], [0, 1, 2, 3], 0.0, None, "cpu")
    alone = image_noise(SHAPE, 13, 3, 0.0, None, "cpu")
    assert torch.equal(batch[3], alone)


def test_variation_strength_endpoints():
    base = image_noise(SHAPE, 1, 2, 0.0, None, "cpu")
    assert torch.equal(image_noise(SHAPE, 1, 2, 0.0, None, "cpu"), base)
    full = image_noise(SHAPE, 1, 2, 1.0, None, "cpu")
    assert torch.allclose(full, image_noise(SHAPE, 2, 0, 0.0, None, "cpu"), atol=1e-5)
    half = image_noise(SHAPE, 1, 2, 0.5, None, "cpu")
    assert not torch.allclose(half, base) and not torch.allclose(half, full)


def test_slerp_parallel_falls_back_to_blend():
    low = torch.ones(4, 3, 3)
    assert torch.allclose(slerp(0.25, low, low), low)


def test_resize_seed_from_keeps_the_centre():
    small = image_noise((4, 8, 8), 5, 0, 0.0, None, "cpu")
    big = image_noise((4, 16, 16), 5, 0, 0.0, (64, 64), "cpu")
    assert torch.equal(big[:, 4:12, 4:12], small)
    cropped = image_noise((4, 4, 4), 5, 0, 0.0, (64, 64), "cpu")
    assert torch.equal(cropped, small[:, 2:6, 2:6])


def test_same_seed_same_noise_and_different_seed_differs():
    assert torch.equal(image_noise(SHAPE, 9, 0, 0.0, None, "cpu"), image_noise(SHAPE, 9, 0, 0.0, None, "cpu"))
    assert not torch.equal(image_noise(SHAPE, 9, 0, 0.0, None, "cpu"), image_noise(SHAPE, 10, 0, 0.0, None, "cpu"))


def test_latent_preview_shape_and_range():
    from sdweb.generation.previews import latent_preview

    latents = torch.randn(2, 4, 8, 6)
    image = latent_preview(latents, is_sdxl=False, index=1)
    assert image.size == (48, 64) and image.mode == "RGB"
    assert latent_preview(latents, is_sdxl=True).size == (48, 64)
