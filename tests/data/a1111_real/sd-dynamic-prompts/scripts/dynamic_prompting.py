# Automatic1111 entry point.

from sd_dynamic_prompts.dynamic_prompting import Script

__all__ = ["Script"]
