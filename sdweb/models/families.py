"""Model families as data: what a checkpoint of each kind is, how it is recognised and how it is loaded.

The architecture numbers (block widths, depths, encoder sizes) are not here: `detect.infer_architecture`
reads them from the file's tensor shapes into the family's bundled config template
(`sdweb/models/configs/<template>/`), so tiny test files, full-size files and distilled variants share one path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILIES", "Family", "get_family"]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_SD1 = "cond_stage_model.transformer."
OPEN_CLIP_SD2 = "cond_stage_model.model."
CLIP_L_SDXL = "conditioner.embedders.0.transformer."
OPEN_CLIP_G_SDXL = "conditioner.embedders.1.model."
OPEN_CLIP_G_REFINER = "conditioner.embedders.0.model."

EOS_ID = 49407  # <|endoftext|>: SD1 and SDXL's CLIP-L pad with it
ZERO_PAD_ID = 0  # "!": OpenCLIP encoders (SD2, SDXL G) pad with id 0 in A1111


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    base: str  # "sd1", "sd2" or "sdxl": what LoRAs, embeddings and VAEs must match
    template: str  # folder under sdweb/models/configs
    load_pipeline: str  # the diffusers class a checkpoint of this family is loaded as
    txt2img_pipeline: str | None
    img2img_pipeline: str | None
    inpaint_pipeline: str | None
    native_size: int
    prediction_type: str  # default when neither the user, a .yaml nor the file says otherwise
    vae_scaling_factor: float
    vae_force_upcast: bool  # SDXL's VAE overflows in fp16
    # LDM key prefixes of the text encoders, in diffusers order (text_encoder, text_encoder_2); a file
    # belongs to the family only if it has weights under each of them.
    text_encoder_prefixes: tuple[str, ...]
    open_clip_prefixes: tuple[str, ...]  # those among them in open_clip layout (fused q/k/v)
    pad_token_ids: tuple[int, ...]  # per text encoder, the id A1111 pads prompts with
    has_text_encoder_2: bool
    only_text_encoder_2: bool  # the SDXL refiner: OpenCLIP-G alone
    unet_in_channels: int
    latent_channels: int
    is_inpaint: bool
    # UNet attention heads: SD1 keeps a fixed head count, SD2/SDXL a fixed width per head.
    unet_fixed_heads: int | None
    unet_head_width: int | None
    add_time_ids: int  # SDXL micro-conditioning values (6 base, 5 refiner with aesthetic score), else 0
    v_variant: str | None = None  # the family a v-prediction file of this kind is reported as


_SD1 = {
    "base": "sd1",
    "native_size": 512,
    "prediction_type": "epsilon",
    "vae_scaling_factor": 0.18215,
    "vae_force_upcast": False,
    "text_encoder_prefixes": (CLIP_L_SD1,),
    "open_clip_prefixes": (),
    "pad_token_ids": (EOS_ID,),
    "has_text_encoder_2": False,
    "only_text_encoder_2": False,
    "latent_channels": 4,
    "unet_fixed_heads": 8,
    "unet_head_width": None,
    "add_time_ids": 0,
}
_SD2 = _SD1 | {
    "base": "sd2",
    "text_encoder_prefixes": (OPEN_CLIP_SD2,),
    "open_clip_prefixes": (OPEN_CLIP_SD2,),
    "pad_token_ids": (ZERO_PAD_ID,),
    "unet_fixed_heads": None,
    "unet_head_width": 64,
}
_SDXL = _SD2 | {
    "base": "sdxl",
    "native_size": 1024,
    "vae_scaling_factor": 0.13025,
    "vae_force_upcast": True,
    "text_encoder_prefixes": (CLIP_L_SDXL, OPEN_CLIP_G_SDXL),
    "open_clip_prefixes": (OPEN_CLIP_G_SDXL,),
    "pad_token_ids": (EOS_ID, ZERO_PAD_ID),
    "has_text_encoder_2": True,
    "add_time_ids": 6,
}
_SD_PIPELINES = {
    "load_pipeline": "StableDiffusionPipeline",
    "txt2img_pipeline": "StableDiffusionPipeline",
    "img2img_pipeline": "StableDiffusionImg2ImgPipeline",
    "inpaint_pipeline": "StableDiffusionInpaintPipeline",
}
# An inpainting UNet takes 9 channels (latents, mask, masked image); txt2img runs through the inpaint
# pipeline with a full mask.
_SD_INPAINT_PIPELINES = {
    "load_pipeline": "StableDiffusionInpaintPipeline",
    "txt2img_pipeline": "StableDiffusionInpaintPipeline",
    "img2img_pipeline": "StableDiffusionInpaintPipeline",
    "inpaint_pipeline": "StableDiffusionInpaintPipeline",
}
_XL_PIPELINES = {
    "load_pipeline": "StableDiffusionXLPipeline",
    "txt2img_pipeline": "StableDiffusionXLPipeline",
    "img2img_pipeline": "StableDiffusionXLImg2ImgPipeline",
    "inpaint_pipeline": "StableDiffusionXLInpaintPipeline",
}
_XL_INPAINT_PIPELINES = dict.fromkeys(_XL_PIPELINES, "StableDiffusionXLInpaintPipeline")
_PLAIN = {"unet_in_channels": 4, "is_inpaint": False}
_INPAINT = {"unet_in_channels": 9, "is_inpaint": True}

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(name="sd1", label="SD 1.x", template="sd1", **_SD1, **_SD_PIPELINES, **_PLAIN),
        Family(
            name="sd1-inpaint",
            label="SD 1.x inpainting",
            template="sd1-inpaint",
            **_SD1,
            **_SD_INPAINT_PIPELINES,
            **_INPAINT,
        ),
        Family(
            name="sd2",
            label="SD 2.x (512, epsilon)",
            template="sd2",
            v_variant="sd2-v",
            **_SD2,
            **_SD_PIPELINES,
            **_PLAIN,
        ),
        Family(
            name="sd2-v",
            label="SD 2.x 768-v",
            template="sd2-v",
            **(_SD2 | {"native_size": 768, "prediction_type": "v_prediction"}),
            **_SD_PIPELINES,
            **_PLAIN,
        ),
        Family(
            name="sd2-inpaint",
            label="SD 2.x inpainting",
            template="sd2-inpaint",
            **_SD2,
            **_SD_INPAINT_PIPELINES,
            **_INPAINT,
        ),
        Family(name="sdxl", label="SDXL", template="sdxl", **_SDXL, **_XL_PIPELINES, **_PLAIN),
        Family(
            name="sdxl-inpaint",
            label="SDXL inpainting",
            template="sdxl-inpaint",
            **_SDXL,
            **_XL_INPAINT_PIPELINES,
            **_INPAINT,
        ),
        # The refiner's UNet expects 5 time ids (with aesthetic score), which only the img2img/inpaint
        # pipelines send: it has no txt2img pipeline.
        Family(
            name="sdxl-refiner",
            label="SDXL refiner",
            template="sdxl-refiner",
            **(
                _SDXL
                | {
                    "text_encoder_prefixes": (OPEN_CLIP_G_REFINER,),
                    "open_clip_prefixes": (OPEN_CLIP_G_REFINER,),
                    "pad_token_ids": (ZERO_PAD_ID,),
                    "only_text_encoder_2": True,
                    "add_time_ids": 5,
                }
            ),
            load_pipeline="StableDiffusionXLImg2ImgPipeline",
            txt2img_pipeline=None,
            img2img_pipeline="StableDiffusionXLImg2ImgPipeline",
            inpaint_pipeline="StableDiffusionXLInpaintPipeline",
            **_PLAIN,
        ),
    )
}


def get_family(name: str) -> Family:
    """The family called `name` (KeyError names the known ones)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None
