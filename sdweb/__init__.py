"""sdweb: a local Stable Diffusion web UI and AUTOMATIC1111-compatible API on diffusers."""

import os as _os

# Offline first: nothing reaches the network unless the user asks for a download. Set before any
# import of gradio / huggingface_hub / diffusers reads them.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
_os.environ.setdefault("DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
