"""One model build at a time per process, and the first import of the lazy model libraries in one thread.

diffusers and accelerate build models under `accelerate.init_empty_weights()`, which swaps
`torch.nn.Module.register_parameter` for the whole process while it runs: two builds in two threads (two
workers, a load beside a ControlNet) can restore each other's swap and leave every later module on the meta
device. Every model build in sdweb holds MODEL_BUILD_LOCK.

diffusers and transformers replace their package in sys.modules with a lazy module at the end of its first
import; a thread whose `import diffusers` / `from transformers import X` lands while another thread runs that
first import gets the half-made package ("module 'diffusers' has no attribute 'StableDiffusionPipeline'",
"cannot import name 'CLIPImageProcessor'"). Whoever may be first to need them (a model load, the page's token
counter) calls import_lazy_packages() before."""

from __future__ import annotations

import importlib
import threading

MODEL_BUILD_LOCK = threading.RLock()
_IMPORT_LOCK = threading.Lock()
_LAZY_PACKAGES = ("transformers", "transformers.models.clip", "diffusers", "diffusers.models", "diffusers.pipelines",
                  "diffusers.schedulers")


def import_lazy_packages() -> None:
    """Import the packages that replace themselves in sys.modules, one thread at a time (fast once done)."""
    with _IMPORT_LOCK:
        for name in _LAZY_PACKAGES:
            importlib.import_module(name)
