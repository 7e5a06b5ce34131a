# Same kind of imports as sd-webui-controlnet's scripts/controlnet.py: A1111's model internals.
import gradio as gr  # noqa: F401
from ldm.models.diffusion.ddpm import LatentDiffusion  # noqa: F401
from modules import devices, processing, scripts, shared  # noqa: F401
from modules.sd_hijack_optimizations import sdp_no_mem_attnblock_forward  # noqa: F401


class Script(scripts.Script):
    def title(self):
        return "ControlNet"
