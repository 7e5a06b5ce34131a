# As sd-dynamic-prompts' scripts/dynamic_prompting.py: the Script lives in the extension's own package.
from sd_dynamic_prompts_like.dynamic_prompting import Script  # noqa: F401
