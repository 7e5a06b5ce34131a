"""sdweb: a local Stable Diffusion web UI and AUTOMATIC1111-compatible API on diffusers."""

__version__ = "0.1.0"
