"""Out of memory during a batch: free memory, retry once in a lower-memory mode where one would help (VAE
tiling for an OOM in the VAE; model CPU offload, with tiling, for one in the UNet or text encoder on CUDA),
say so in a note and the log; otherwise, or when the retry runs out of memory too, a clear UserError. The
server keeps serving either way. The modes are for the retry only: the next job runs as planned again."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest, Txt2ImgRequest
from sdweb.generation.hires import hires_size
from sdweb.generation.runner import BatchOutcome
from sdweb.models.manager import LoadedModel
from sdweb.runtime.memory import (
    OOM_MODE_LABELS,
    free_memory,
    is_out_of_memory,
    lower_memory_modes,
    oom_fallback_modes,
    oom_in_vae,
)
from sdweb.runtime.policy import RuntimePlan, set_vae_tiling_for_size

log = logging.getLogger(__name__)


def _final_size(request: GenerationRequest) -> tuple[int, int]:
    if isinstance(request, Txt2ImgRequest) and request.enable_hr:
        return hires_size(request)
    return request.width, request.height


def _out_of_memory(request: GenerationRequest, error: BaseException, retried: str = "") -> UserError:
    log.warning("Out of memory at %dx%d, batch %d%s: %s", request.width, request.height, request.batch_size,
                f" (also with {retried})" if retried else "", error)
    also = f", also with {retried}" if retried else ""
    return UserError(f"Out of memory generating {request.batch_size} image(s) of "
                     f"{request.width}x{request.height}{also}.", code="out_of_memory",
                     hint="Lower the batch size or the image size, or start with --medvram (or --lowvram).")


def run_with_oom_retry(run: Callable[[], BatchOutcome], request: GenerationRequest, model: LoadedModel,
                       plan: RuntimePlan) -> BatchOutcome:
    """run() once; on out of memory, free memory and maybe retry once in a lower-memory mode."""
    pipe = model.base_pipeline
    width, height = _final_size(request)
    tiling_on = set_vae_tiling_for_size(pipe, plan, width, height)
    try:
        return run()
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        first = error
    free_memory(plan.device)
    large = model.family.native_size >= 1024  # SDXL-size and flow models: the --medvram-sdxl rules
    modes = oom_fallback_modes(plan, is_sdxl=large, in_vae=oom_in_vae(first), vae_tiling_on=tiling_on)
    if not modes:
        raise _out_of_memory(request, first) from first
    labels = " and ".join(OOM_MODE_LABELS[mode] for mode in modes)
    log.warning("Out of memory at %dx%d (%s); retrying once with %s", request.width, request.height,
                str(first).splitlines()[0][:200] if str(first) else type(first).__name__, labels)
    try:
        with lower_memory_modes(pipe, plan, modes):
            outcome = run()
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        free_memory(plan.device)
        raise _out_of_memory(request, error, labels) from error
    outcome.notes.append(f"Out of memory: this batch was run again with {labels}.")
    return outcome
