"""sdweb: a local Stable Diffusion web UI and AUTOMATIC1111-compatible API on diffusers."""

import os as _os
import sys as _sys


def startup_environment(platform: str) -> dict[str, str]:
    """Environment defaults set before any import of torch, gradio, huggingface_hub or diffusers reads them
    (a value the user set wins). Offline first: nothing reaches the network unless the user asks for a download."""
    defaults = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1",
                "DISABLE_TELEMETRY": "1"}
    if platform == "darwin":
        # A1111's webui-macos-env.sh: an op MPS lacks runs on the CPU instead of failing (torch reads it at import)
        defaults["PYTORCH_ENABLE_MPS_FALLBACK"] = "1"
    return defaults


for _name, _value in startup_environment(_sys.platform).items():
    _os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
