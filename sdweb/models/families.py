"""Model families as data: what a checkpoint of each kind is, can do, and how it is recognised and loaded.

A family record says, as data, what generation needs to know: the denoiser kind (``engine``: "unet" for
SD-style eps / v-prediction UNets, "flow" for flow-matching transformers), its text encoders, latent format,
scheduling, guidance, native size and size multiple, defaults, and which features apply. Code outside
``sdweb/models`` and the engines asks the record; it never tests a family name.

The architecture numbers (block widths, depths, encoder sizes) are not here: the detection code reads them from
the file's tensor shapes into the family's bundled config template (`sdweb/models/configs/<template>/`), so tiny
test files, full-size files and distilled variants share one path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FAMILIES", "Family", "Features", "Guidance", "LatentFormat", "ModelCapabilities", "Scheduling",
           "TextEncoderSpec", "capabilities_of", "get_family"]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_SD1 = "cond_stage_model.transformer."
OPEN_CLIP_SD2 = "cond_stage_model.model."
CLIP_L_SDXL = "conditioner.embedders.0.transformer."
OPEN_CLIP_G_SDXL = "conditioner.embedders.1.model."
OPEN_CLIP_G_REFINER = "conditioner.embedders.0.model."
# ComfyUI / Forge all-in-one files of the flow families
TEXT_ENCODERS_PREFIX = "text_encoders."
FLOW_VAE_PREFIX = "vae."

# Latent -> RGB fits of the VAEs' latent spaces, for previews (one row per latent channel)
SD1_PREVIEW_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
SDXL_PREVIEW_RGB = ((0.3448, 0.4168, 0.4395), (-0.1953, -0.0290, 0.0250), (0.1074, 0.0886, -0.0163),
                    (-0.3730, -0.2499, -0.2088))
FLUX_PREVIEW_RGB = (
    (-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
    (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115), (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
    (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
    (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778))

EOS_ID = 49407  # <|endoftext|>: SD1 and SDXL's CLIP-L pad with it
ZERO_PAD_ID = 0  # "!": OpenCLIP encoders (SD2, SDXL G) pad with id 0 in A1111
T5_PAD_ID = 0  # <pad>
QWEN_PAD_ID = 151643  # <|endoftext|>


@dataclass(frozen=True)
class TextEncoderSpec:
    """One text encoder of a family, in the order of the diffusers pipeline's components."""

    slot: str  # the file kind users have: "clip_l", "clip_g", "t5xxl" or "qwen3" (Forge's module names)
    component: str  # the diffusers pipeline attribute: "text_encoder", "text_encoder_2", ...
    tokenizer: str  # "clip", "t5" or "qwen3": which bundled tokenizer (and so which kind of encoder)
    max_length: int  # tokens per chunk (CLIP: 77 with BOS/EOS) or the whole prompt (T5; Qwen: after the dropped
    # template tokens, 0 = no limit)
    pooled: bool  # the pooled output conditions the denoiser
    pad_token_id: int
    sequence: bool = True  # its per-token output is part of the denoiser's text sequence
    mask_padding: bool = False  # padding is masked in the encoder and the denoiser (Chroma's T5)
    # CLIP for UNets: which hidden state A1111 reads ("skip": SD1's, honouring clip skip; "last": SD2's normed
    # final state; "penultimate": SDXL's) and the key of its vectors in SDXL embedding files
    hidden_layer: str = "penultimate"
    embedding_key: str = ""
    # Qwen chat encoders: the prompt goes through the tokenizer's chat template (with `enable_thinking` as
    # given); the hidden states at these indexes, concatenated along the width, are the output, prompt tokens
    # only (no padding)
    hidden_states: tuple[int, ...] = (-1,)
    thinking: bool = True
    # Qwen-Image's fixed prompt template instead (`{}` is the prompt; "" = the tokenizer's chat template), the
    # template tokens dropped from the output's start, and whether the encoder also reads the edited image through
    # its vision tower (Qwen2.5-VL in Qwen-Image-Edit; `<|image_pad|>` in the template stands for the image)
    template: str = ""
    drop_tokens: int = 0
    vision: bool = False
    # Flux.2 Klein: the prompt is padded to `max_length` with the pad id (masked in the encoder) and the padding's
    # hidden states are kept as part of the text sequence, as diffusers' Flux2KleinPipeline does
    pad_to_max: bool = False


@dataclass(frozen=True)
class LatentFormat:
    channels: int
    scaling_factor: float
    shift_factor: float = 0.0
    downscale: int = 8  # image pixels per latent pixel
    patch: int = 1  # the transformer packs patch x patch latent pixels into one token (Flux: 2)
    # live previews: RGB = latent channels x these rows (least-squares fits of the VAE); () = decode with the VAE
    preview_rgb: tuple[tuple[float, float, float], ...] = ()
    # the VAE's diffusers class: "AutoencoderKL" (2-D, scaling / shift factors), "AutoencoderKLQwenImage"
    # (Wan-style causal 3-D convolutions run on one frame; per-channel latent mean and std) or "AutoencoderKLFlux2"
    # (Flux.2: 32 channels; the samplers' latents are its 2 x 2 patches (128 channels at 1/16) normalised by its
    # batch-norm statistics)
    vae_class: str = "AutoencoderKL"

    @property
    def vae_channels(self) -> int:
        """The VAE's own latent channels (Flux.2's 32 for the samplers' 128)."""
        return self.channels // 4 if self.vae_class == "AutoencoderKLFlux2" else self.channels


@dataclass(frozen=True)
class Scheduling:
    kind: str  # "discrete" (DDPM timesteps, alphas_cumprod) or "flow" (sigma 1 -> 0, velocity prediction)
    shift: float = 1.0  # flow: static shift s: sigma -> s*sigma / (1 + (s-1)*sigma)
    dynamic_shift: bool = False  # flow: mu from the image token count (Flux dev)
    base_shift: float = 0.5
    max_shift: float = 1.15
    base_seq_len: int = 256
    max_seq_len: int = 4096
    shift_terminal: float = 0.0  # flow: the schedule stretched so its last sigma before 0 is this (Qwen-Image)
    # flow: mu from diffusers' `compute_empirical_mu` (a fit on the image's token count and the step count: Flux.2)
    empirical_mu: bool = False
    sdxl_tables: bool = False  # discrete: the SDXL variants of published schedules (Align Your Steps)


@dataclass(frozen=True)
class Guidance:
    cfg: bool = True  # real classifier-free guidance with a negative prompt
    distilled: bool = False  # a guidance value is an input of the model (Flux dev: "Distilled CFG Scale")
    # Qwen-Image's true CFG: the guided velocity of each token rescaled to the norm of the conditional one
    renorm: bool = False


@dataclass(frozen=True)
class Defaults:
    """What the UI and the API start from for this family (Forge's per-family presets)."""

    steps: int = 20
    cfg_scale: float = 7.0
    distilled_cfg_scale: float = 3.5
    sampler: str = "DPM++ 2M"
    scheduler: str = "Automatic"


@dataclass(frozen=True)
class Features:
    hires_fix: bool = True
    refiner: bool = True  # a refiner pass may follow (A1111: any checkpoint with the same latents)
    controlnet: bool = True
    emphasis: bool = True  # (word:1.2) weights the encoder output
    clip_skip: bool = True
    negative_prompt: bool = True
    embeddings: bool = True  # textual inversion
    lora: bool = True
    lokr: bool = False  # diffusers' LoRA loader of the family converts LyCORIS LoKr files (ai-toolkit's)
    # an editing model (Flux.1 Kontext, Qwen-Image-Edit): img2img's init image is the reference it edits (denoising strength 1.0
    # unless asked otherwise); it has no txt2img
    edit: bool = False


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    base: str  # what LoRAs, embeddings and VAEs must match: "sd1", "sd2", "sdxl", "flux", "sd3"
    template: str  # folder under sdweb/models/configs
    load_pipeline: str  # the diffusers class a checkpoint of this family is loaded as
    txt2img_pipeline: str | None
    img2img_pipeline: str | None
    inpaint_pipeline: str | None
    native_size: int
    prediction_type: str  # "epsilon" / "v_prediction" (the default when nothing says otherwise) or "flow"
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
    # -- what the family can do (the engines, generation, UI and API read these) ------------------------
    engine: str = "unet"  # the denoiser kind: "unet" (SD eps / v-prediction) or "flow" (flow-matching transformer)
    transformer_class: str | None = None  # flow: the diffusers transformer class
    text_encoders: tuple[TextEncoderSpec, ...] = ()
    latent: LatentFormat = LatentFormat(channels=4, scaling_factor=0.18215)
    scheduling: Scheduling = Scheduling(kind="discrete")
    guidance: Guidance = Guidance()
    defaults: Defaults = Defaults()
    features: Features = Features()
    size_multiple: int = 8  # width and height step
    dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32")  # what the denoiser may run in
    sentinel_keys: tuple[str, ...] = field(default=())  # flow: keys (without prefix) that identify the family
    # flow: a word in the file name that picks this family among those with the same weights' layout (Kontext's
    # weights look like Flux dev's; InvokeAI and Forge tell them apart by name too); "" = none needed
    file_name_word: str = ""


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
    "text_encoders": (TextEncoderSpec("clip_l", "text_encoder", "clip", 77, False, EOS_ID, hidden_layer="skip"),),
    "latent": LatentFormat(channels=4, scaling_factor=0.18215, preview_rgb=SD1_PREVIEW_RGB),
}
_SD2 = _SD1 | {
    "base": "sd2",
    "text_encoder_prefixes": (OPEN_CLIP_SD2,),
    "open_clip_prefixes": (OPEN_CLIP_SD2,),
    "pad_token_ids": (ZERO_PAD_ID,),
    "unet_fixed_heads": None,
    "unet_head_width": 64,
    "text_encoders": (TextEncoderSpec("clip_h", "text_encoder", "clip", 77, False, ZERO_PAD_ID, hidden_layer="last"),),
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
    "text_encoders": (TextEncoderSpec("clip_l", "text_encoder", "clip", 77, False, EOS_ID, embedding_key="clip_l"),
                      TextEncoderSpec("clip_g", "text_encoder_2", "clip", 77, True, ZERO_PAD_ID,
                                      embedding_key="clip_g")),
    "latent": LatentFormat(channels=4, scaling_factor=0.13025, preview_rgb=SDXL_PREVIEW_RGB),
    "scheduling": Scheduling(kind="discrete", sdxl_tables=True),
    "features": Features(),
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

# -- flow-matching transformers (ComfyUI / Forge all-in-one prefixes; transformer-only files need the
# encoders and the VAE as separate files) -------------------------------------------------------------------
_CLIP_L = TextEncoderSpec("clip_l", "text_encoder", "clip", 77, True, EOS_ID)
_CLIP_L_POOLED = TextEncoderSpec("clip_l", "text_encoder", "clip", 77, True, EOS_ID, sequence=False)
_FLUX_SENTINEL = "double_blocks.0.img_attn.norm.key_norm.scale"
_SD3_SENTINEL = "joint_blocks.0.context_block.adaLN_modulation.1.weight"
_FLOW_COMMON = {
    "native_size": 1024,
    "prediction_type": "flow",
    "vae_force_upcast": False,
    "open_clip_prefixes": (),
    "only_text_encoder_2": False,
    "latent_channels": 16,
    "is_inpaint": False,
    "unet_fixed_heads": None,
    "unet_head_width": None,
    "add_time_ids": 0,
    "engine": "flow",
    "size_multiple": 16,
    "dtypes": ("bfloat16", "float32"),  # fp16 overflows in these transformers
}
_FLUX_LATENT = LatentFormat(channels=16, scaling_factor=0.3611, shift_factor=0.1159, patch=2,
                            preview_rgb=FLUX_PREVIEW_RGB)
_FLUX = _FLOW_COMMON | {
    "base": "flux",
    "load_pipeline": "FluxPipeline",
    "txt2img_pipeline": "FluxPipeline",
    "img2img_pipeline": "FluxImg2ImgPipeline",
    "inpaint_pipeline": "FluxInpaintPipeline",
    "vae_scaling_factor": 0.3611,
    "text_encoder_prefixes": ("text_encoders.clip_l.transformer.", "text_encoders.t5xxl.transformer."),
    "pad_token_ids": (EOS_ID, T5_PAD_ID),
    "has_text_encoder_2": True,
    "unet_in_channels": 64,
    "transformer_class": "FluxTransformer2DModel",
    # Forge pads T5 prompts to at least 256 tokens (longer prompts are not cut)
    "text_encoders": (_CLIP_L_POOLED, TextEncoderSpec("t5xxl", "text_encoder_2", "t5", 256, False, T5_PAD_ID)),
    "latent": _FLUX_LATENT,
    # Forge samples Flux with a fixed mu (shift = e^mu) whatever the resolution: 1.15 for dev, 1.0 for schnell
    "scheduling": Scheduling(kind="flow", shift=3.1581929096897676),
    "guidance": Guidance(cfg=False, distilled=True),
    "defaults": Defaults(steps=20, cfg_scale=1.0, distilled_cfg_scale=3.5, sampler="Euler", scheduler="Simple"),
    "features": Features(refiner=False, controlnet=False, clip_skip=False, embeddings=False),
}
_T5_ONLY = (TextEncoderSpec("t5xxl", "text_encoder", "t5", 256, False, T5_PAD_ID, mask_padding=True),)
_SD3 = _FLOW_COMMON | {
    "base": "sd3",
    "load_pipeline": "StableDiffusion3Pipeline",
    "txt2img_pipeline": "StableDiffusion3Pipeline",
    "img2img_pipeline": "StableDiffusion3Img2ImgPipeline",
    "inpaint_pipeline": "StableDiffusion3InpaintPipeline",
    "vae_scaling_factor": 1.5305,
    "text_encoder_prefixes": ("text_encoders.clip_l.transformer.", "text_encoders.clip_g.transformer.",
                              "text_encoders.t5xxl.transformer."),
    "pad_token_ids": (EOS_ID, ZERO_PAD_ID, T5_PAD_ID),
    "has_text_encoder_2": True,
    "unet_in_channels": 16,
    "transformer_class": "SD3Transformer2DModel",
    "text_encoders": (_CLIP_L, TextEncoderSpec("clip_g", "text_encoder_2", "clip", 77, True, ZERO_PAD_ID),
                      TextEncoderSpec("t5xxl", "text_encoder_3", "t5", 256, False, T5_PAD_ID)),
    "latent": LatentFormat(channels=16, scaling_factor=1.5305, shift_factor=0.0609),
    "scheduling": Scheduling(kind="flow", shift=3.0),
    "defaults": Defaults(steps=28, cfg_scale=5.0, sampler="Euler", scheduler="Simple"),
    "features": Features(refiner=False, controlnet=False, clip_skip=False, embeddings=False),
}

# Z-Image: a single-stream DiT over the Flux VAE's latents, prompted by Qwen3-4B (chat template with thinking,
# the second-to-last hidden state of the prompt's tokens). Turbo and Base share the weights' layout; Turbo is
# the one people run (8 steps, no CFG, shift 3).
_ZIMAGE_SENTINEL = "layers.0.adaLN_modulation.0.weight"
_ZIMAGE = _FLOW_COMMON | {
    "base": "zimage",
    "load_pipeline": "ZImagePipeline",
    "txt2img_pipeline": "ZImagePipeline",
    "img2img_pipeline": "ZImageImg2ImgPipeline",
    "inpaint_pipeline": "ZImageInpaintPipeline",
    "vae_scaling_factor": 0.3611,
    "text_encoder_prefixes": (),
    "pad_token_ids": (QWEN_PAD_ID,),
    "has_text_encoder_2": False,
    "unet_in_channels": 64,  # 16 latent channels x 2 x 2 patch
    "transformer_class": "ZImageTransformer2DModel",
    "text_encoders": (TextEncoderSpec("qwen3", "text_encoder", "qwen3", 512, False, QWEN_PAD_ID,
                                      hidden_states=(-2,), thinking=True),),
    "latent": _FLUX_LATENT,
    "scheduling": Scheduling(kind="flow", shift=3.0),
    "defaults": Defaults(steps=8, cfg_scale=1.0, sampler="Euler", scheduler="Simple"),
    "features": Features(controlnet=False, clip_skip=False, embeddings=False, lokr=True),
}

# Qwen-Image: an MMDiT (diffusers key names in the files) over a Wan-style VAE's latents, prompted by the last
# hidden state of Qwen2.5-VL-7B run over a fixed template (its first tokens dropped); true CFG with the guided
# velocity rescaled to the conditional one's norm; dynamic shift (exponential time shift) stretched to 0.02.
# Qwen-Image-Edit has the same weights' layout (told apart by "edit" in the file name, as InvokeAI does): the
# image to edit goes in as reference tokens and, through Qwen2.5-VL's vision tower, into the prompt: the init image
# at the output size (as img2img resized it), where diffusers' pipeline resizes it to about 1 MP (the output's
# default size there, so the two agree at ~1 MP outputs).
QWEN_IMAGE_TEMPLATE = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, "
                       "text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n"
                       "{}<|im_end|>\n<|im_start|>assistant\n")
QWEN_IMAGE_EDIT_TEMPLATE = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
    "image that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{}<|im_end|>\n"
    "<|im_start|>assistant\n")
_QWEN_IMAGE_SENTINEL = "transformer_blocks.0.img_mod.1.weight"
_QWEN_IMAGE = _FLOW_COMMON | {
    "base": "qwenimage",
    "load_pipeline": "QwenImagePipeline",
    "txt2img_pipeline": "QwenImagePipeline",
    "img2img_pipeline": "QwenImageImg2ImgPipeline",
    "inpaint_pipeline": "QwenImageInpaintPipeline",
    "vae_scaling_factor": 1.0,
    "text_encoder_prefixes": (),
    "pad_token_ids": (QWEN_PAD_ID,),
    "has_text_encoder_2": False,
    "unet_in_channels": 64,  # 16 latent channels x 2 x 2 patch
    "transformer_class": "QwenImageTransformer2DModel",
    "text_encoders": (TextEncoderSpec("qwen25vl", "text_encoder", "qwen25vl", 512, False, QWEN_PAD_ID,
                                      template=QWEN_IMAGE_TEMPLATE, drop_tokens=34),),
    "latent": LatentFormat(channels=16, scaling_factor=1.0, patch=2, vae_class="AutoencoderKLQwenImage"),
    "scheduling": Scheduling(kind="flow", shift=1.0, dynamic_shift=True, base_shift=0.5, max_shift=0.9,
                             base_seq_len=256, max_seq_len=8192, shift_terminal=0.02),
    "guidance": Guidance(cfg=True, distilled=False, renorm=True),
    "defaults": Defaults(steps=50, cfg_scale=4.0, sampler="Euler", scheduler="Simple"),
    "features": Features(refiner=False, controlnet=False, clip_skip=False, embeddings=False),
}
_QWEN_IMAGE_EDIT = _QWEN_IMAGE | {
    "load_pipeline": "QwenImageEditPipeline",
    "txt2img_pipeline": None,
    "img2img_pipeline": "QwenImageEditPipeline",
    "inpaint_pipeline": "QwenImageEditInpaintPipeline",
    # no cut: the pipeline keeps every token (the image's take ~1,400 at 1 MP)
    "text_encoders": (TextEncoderSpec("qwen25vl", "text_encoder", "qwen25vl", 0, False, QWEN_PAD_ID,
                                      template=QWEN_IMAGE_EDIT_TEMPLATE, drop_tokens=64, vision=True),),
    "features": Features(refiner=False, controlnet=False, clip_skip=False, embeddings=False, hires_fix=False,
                         edit=True),
}

# Flux.2 Klein 4B / 9B: the Flux.2 MMDiT (BFL keys, no biases, shared modulation) over the 32-channel Flux.2 VAE's
# 2 x 2 patches, prompted by Qwen3 (4B: Qwen3-4B, 9B: Qwen3-8B; the size is read from the shapes: `txt_in` takes 3 x
# the encoder's width) through its chat template without thinking, padded to 512 tokens, hidden states 9, 18 and 27
# side by side. The distilled models run 4 steps without CFG; "base" in the file name marks the undistilled ones
# (their weights look alike, as InvokeAI tells them apart). Flux.2 Dev (Mistral encoder) is refused by name.
_FLUX2_SENTINEL = "single_stream_modulation.lin.weight"
_KLEIN = _FLOW_COMMON | {
    "base": "flux2klein",
    "load_pipeline": "Flux2KleinPipeline",
    "txt2img_pipeline": "Flux2KleinPipeline",
    "img2img_pipeline": "Flux2KleinPipeline",
    "inpaint_pipeline": "Flux2KleinInpaintPipeline",
    "vae_scaling_factor": 1.0,
    "text_encoder_prefixes": (),
    "pad_token_ids": (QWEN_PAD_ID,),
    "has_text_encoder_2": False,
    "unet_in_channels": 128,  # 32 latent channels x 2 x 2 patch
    "latent_channels": 128,
    "transformer_class": "Flux2Transformer2DModel",
    "text_encoders": (TextEncoderSpec("qwen3", "text_encoder", "qwen3", 512, False, QWEN_PAD_ID,
                                      hidden_states=(9, 18, 27), thinking=False, pad_to_max=True),),
    "latent": LatentFormat(channels=128, scaling_factor=1.0, downscale=16, patch=1, vae_class="AutoencoderKLFlux2"),
    "scheduling": Scheduling(kind="flow", shift=1.0, empirical_mu=True),
    "guidance": Guidance(cfg=False, distilled=False),
    "defaults": Defaults(steps=4, cfg_scale=1.0, sampler="Euler", scheduler="Simple"),
    "features": Features(refiner=False, controlnet=False, clip_skip=False, embeddings=False),
}
_KLEIN_BASE = _KLEIN | {"guidance": Guidance(cfg=True, distilled=False),
                        "defaults": Defaults(steps=50, cfg_scale=4.0, sampler="Euler", scheduler="Simple")}

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
                    "text_encoders": (TextEncoderSpec("clip_g", "text_encoder_2", "clip", 77, True, ZERO_PAD_ID,
                                                      embedding_key="clip_g"),),
                    "features": Features(),
                }
            ),
            load_pipeline="StableDiffusionXLImg2ImgPipeline",
            txt2img_pipeline=None,
            img2img_pipeline="StableDiffusionXLImg2ImgPipeline",
            inpaint_pipeline="StableDiffusionXLInpaintPipeline",
            **_PLAIN,
        ),
        # Flow families are told apart by sentinel keys (without the file's prefix): a file is of the family
        # whose sentinels are all present, with the most sentinels, whose transformer takes the file's input
        # channels (`unet_in_channels`); see sdweb.models.flow_detect.
        Family(name="flux-dev", label="Flux.1 dev", template="flux-dev", **_FLUX,
               sentinel_keys=(_FLUX_SENTINEL, "guidance_in.in_layer.weight")),
        Family(name="flux-schnell", label="Flux.1 schnell", template="flux-schnell",
               **(_FLUX | {"scheduling": Scheduling(kind="flow", shift=2.718281828459045),
                           "guidance": Guidance(cfg=False, distilled=False),
                           "defaults": Defaults(steps=4, cfg_scale=1.0, sampler="Euler", scheduler="Simple")}),
               sentinel_keys=(_FLUX_SENTINEL,)),
        # Flux.1 Fill dev: the inpainting / outpainting model (input = latents + mask + masked image latents)
        Family(name="flux-fill", label="Flux.1 Fill dev", template="flux-fill",
               **(_FLUX | {"load_pipeline": "FluxFillPipeline",
                           "txt2img_pipeline": None,
                           "img2img_pipeline": "FluxFillPipeline",
                           "inpaint_pipeline": "FluxFillPipeline",
                           "unet_in_channels": 384,
                           "is_inpaint": True,
                           "defaults": Defaults(steps=50, cfg_scale=1.0, distilled_cfg_scale=30.0, sampler="Euler",
                                                scheduler="Simple")}),
               sentinel_keys=(_FLUX_SENTINEL, "guidance_in.in_layer.weight")),
        # Flux.1 Kontext dev: Flux dev's transformer given the image to edit as extra tokens (rope id 1)
        Family(name="flux-kontext", label="Flux.1 Kontext dev", template="flux-kontext",
               **(_FLUX | {"load_pipeline": "FluxKontextPipeline",
                           "txt2img_pipeline": None,
                           "img2img_pipeline": "FluxKontextPipeline",
                           "inpaint_pipeline": "FluxKontextInpaintPipeline",
                           "defaults": Defaults(steps=28, cfg_scale=1.0, distilled_cfg_scale=2.5, sampler="Euler",
                                                scheduler="Simple"),
                           "features": Features(controlnet=False, clip_skip=False, embeddings=False, hires_fix=False,
                                                edit=True)}),
               sentinel_keys=(_FLUX_SENTINEL, "guidance_in.in_layer.weight"), file_name_word="kontext"),
        Family(name="chroma", label="Chroma", template="chroma",
               **(_FLUX | {"base": "chroma",
                           "load_pipeline": "ChromaPipeline",
                           "txt2img_pipeline": "ChromaPipeline",
                           "img2img_pipeline": "ChromaImg2ImgPipeline",
                           "inpaint_pipeline": "ChromaInpaintPipeline",
                           "text_encoder_prefixes": ("text_encoders.t5xxl.transformer.",),
                           "pad_token_ids": (T5_PAD_ID,),
                           "has_text_encoder_2": False,
                           "transformer_class": "ChromaTransformer2DModel",
                           "text_encoders": _T5_ONLY,
                           "scheduling": Scheduling(kind="flow", shift=2.718281828459045),
                           "guidance": Guidance(cfg=True, distilled=False),
                           "defaults": Defaults(steps=30, cfg_scale=3.0, sampler="Euler", scheduler="Simple")}),
               sentinel_keys=(_FLUX_SENTINEL, "distilled_guidance_layer.in_proj.weight")),
        Family(name="sd3", label="SD 3 medium", template="sd3", **_SD3, sentinel_keys=(_SD3_SENTINEL,)),
        Family(name="sd35-medium", label="SD 3.5 medium", template="sd35-medium", **_SD3,
               sentinel_keys=(_SD3_SENTINEL, "joint_blocks.0.x_block.attn.ln_q.weight",
                              "joint_blocks.0.x_block.attn2.qkv.weight")),
        Family(name="sd35-large", label="SD 3.5 large", template="sd35-large",
               **(_SD3 | {"defaults": Defaults(steps=28, cfg_scale=4.5, sampler="Euler", scheduler="Simple")}),
               sentinel_keys=(_SD3_SENTINEL, "joint_blocks.0.x_block.attn.ln_q.weight")),
        # Lumina 2 shares cap_embedder / context_refiner but modulates with adaLN_modulation.1
        Family(name="z-image", label="Z-Image Turbo", template="z-image", **_ZIMAGE,
               sentinel_keys=(_ZIMAGE_SENTINEL, "cap_embedder.1.weight", "context_refiner.0.attention.qkv.weight")),
        Family(name="qwen-image", label="Qwen-Image", template="qwen-image", **_QWEN_IMAGE,
               sentinel_keys=(_QWEN_IMAGE_SENTINEL, "txt_norm.weight")),
        Family(name="qwen-image-edit", label="Qwen-Image-Edit", template="qwen-image-edit", **_QWEN_IMAGE_EDIT,
               sentinel_keys=(_QWEN_IMAGE_SENTINEL, "txt_norm.weight"), file_name_word="edit"),
        Family(name="flux2-klein", label="Flux.2 Klein", template="flux2-klein", **_KLEIN,
               sentinel_keys=(_FLUX_SENTINEL, _FLUX2_SENTINEL)),
        Family(name="flux2-klein-base", label="Flux.2 Klein base", template="flux2-klein", **_KLEIN_BASE,
               sentinel_keys=(_FLUX_SENTINEL, _FLUX2_SENTINEL), file_name_word="base"),
    )
}


@dataclass(frozen=True)
class ModelCapabilities:
    """What extensions are told about the loaded model (instead of a family name): the record's facts."""

    label: str  # for messages: "SDXL", "Flux.1 dev"
    engine: str  # "unet" (SD eps / v-prediction) or "flow" (flow-matching transformer)
    compatible_with: str  # the key LoRA, ControlNet and VAE files must match ("sd1", "sdxl", "flux", ...)
    latent_channels: int
    native_size: int
    size_multiple: int
    cfg: bool  # real CFG with a negative prompt
    distilled_guidance: bool  # a "Distilled CFG Scale" input
    controlnet: bool
    hires_fix: bool
    inpainting_model: bool
    v_prediction: bool = False


def capabilities_of(family: Family, prediction_type: str | None = None) -> ModelCapabilities:
    return ModelCapabilities(
        label=family.label, engine=family.engine, compatible_with=family.base,
        latent_channels=family.latent.channels, native_size=family.native_size, size_multiple=family.size_multiple,
        cfg=family.guidance.cfg, distilled_guidance=family.guidance.distilled, controlnet=family.features.controlnet,
        hires_fix=family.features.hires_fix, inpainting_model=family.is_inpaint,
        v_prediction=(prediction_type or family.prediction_type) == "v_prediction")


def get_family(name: str) -> Family:
    """The family called `name` (KeyError names the known ones)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None
