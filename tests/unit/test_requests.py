import pytest
from PIL import Image
from pydantic import ValidationError

from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest


def test_ui_defaults():
    request = Txt2ImgRequest(prompt="a cat")
    assert (request.steps, request.sampler_name, request.scheduler, request.cfg_scale) == (20, "DPM++ 2M",
                                                                                            "Automatic", 7.0)
    assert (request.width, request.height, request.seed, request.denoising_strength) == (512, 512, -1, 0.7)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("width", 500, "multiple of 8"), ("height", 32, "greater than or equal"), ("width", 8192, "less than"),
    ("steps", 0, "steps"), ("steps", 151, "steps"), ("batch_size", 0, "batch_size"),
    ("subseed_strength", 1.5, "subseed_strength"), ("cfg_scale", -1, "cfg_scale"), ("seed", -2, "seed"),
    ("nonsense_field", 1, "nonsense_field"),
])
def test_bounds_name_the_field(field, value, words):
    with pytest.raises(ValidationError) as error:
        Txt2ImgRequest(**{field: value})
    text = str(error.value)
    assert field in text and words in text


def test_hires_target_size_rules():
    assert Txt2ImgRequest(enable_hr=True, width=512, height=768, hr_scale=1.5).hires_target_size() == (768, 1152)
    assert Txt2ImgRequest(width=512, height=768, hr_resize_x=1024).hires_target_size() == (1024, 1536)
    assert Txt2ImgRequest(width=512, height=768, hr_resize_y=1536).hires_target_size() == (1024, 1536)
    with pytest.raises(ValidationError, match="hires fix would make"):
        Txt2ImgRequest(enable_hr=True, width=4096, height=4096, hr_scale=2)


def test_img2img_needs_images_and_respects_batch():
    with pytest.raises(ValidationError, match="init_images"):
        Img2ImgRequest()
    image = Image.new("RGB", (64, 64))
    assert Img2ImgRequest(init_images=[image]).denoising_strength == 0.75
    with pytest.raises(ValidationError, match="batch_size"):
        Img2ImgRequest(init_images=[image, image, image], batch_size=2)


def test_seed_resize_non_positive_means_off():
    assert Txt2ImgRequest(seed_resize_from_w=0).seed_resize_from_w == -1
