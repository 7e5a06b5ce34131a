"""What scripts may ask of the app besides running jobs (through `p.services` or `context.services`): the names
of checkpoints, VAEs, samplers, schedules, upscalers and styles as the UI lists them, upscaling an image with a
named upscaler, and interrogating an image. One object per GenerationService; it holds no state of its own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from sdweb.core.errors import NotFoundError
from sdweb.generation.hires import LATENT_MODES
from sdweb.samplers.resolve import find_scheduler, resolve_sampler, sampler_names, scheduler_labels

if TYPE_CHECKING:
    from sdweb.generation.service import GenerationService


class ScriptServices:
    def __init__(self, service: GenerationService) -> None:
        self._service = service

    def setting(self, key: str, default: Any = None) -> Any:
        return self._service.settings.get(key, default)

    @property
    def runtime_plan(self) -> Any:
        """The frozen runtime plan (device, dtypes) that runtime/policy.py chose for this worker."""
        return self._service.plan

    # -- names, as the page lists them -----------------------------------------------------------------------
    def checkpoint_titles(self) -> list[str]:
        return sorted(self._service.manager.registry.checkpoint_titles(), key=str.casefold)

    def find_checkpoint(self, name: str) -> str | None:
        """The title of the checkpoint `name` means (A1111's closest match), or None."""
        entry = self._service.manager.registry.find_checkpoint(name.strip())
        return entry.title if entry is not None else None

    def checkpoint_file(self, name: str) -> Path | None:
        """The file (or diffusers folder) of the checkpoint `name` means, or None."""
        entry = self._service.manager.registry.find_checkpoint(name.strip())
        return entry.path if entry is not None else None

    def vae_names(self) -> list[str]:
        return ["Automatic", "None", *(vae.name for vae in self._service.manager.registry.vaes)]

    def find_vae(self, name: str) -> str | None:
        """A1111's X/Y/Z rule: Automatic / None, else a VAE file name (case-insensitive, with or without
        its extension); None when nothing matches."""
        wanted = name.strip().casefold()
        for candidate in self.vae_names():
            if wanted in (candidate.casefold(), candidate.rsplit(".", 1)[0].casefold()):
                return candidate
        return None

    def sampler_names(self) -> list[str]:
        hidden = set(self.setting("hide_samplers", []) or [])
        return [name for name in sampler_names() if name not in hidden]

    def find_sampler(self, name: str) -> str | None:
        """The sampler a name means (legacy names with a schedule, "DPM++ 2M Karras", too)."""
        try:
            sampler = resolve_sampler(name.strip(), None, strict=True).sampler
        except NotFoundError:
            return None
        return sampler.name

    def scheduler_labels(self) -> list[str]:
        return scheduler_labels()

    def find_scheduler(self, name: str) -> str | None:
        schedule = find_scheduler(name.strip())
        return schedule.label if schedule is not None else None

    def upscaler_names(self) -> list[str]:
        """None, Lanczos, Nearest, then the model upscalers (A1111's shared.sd_upscalers order)."""
        return self._service.postprocess.upscalers.names()

    def hires_upscaler_names(self) -> list[str]:
        return [*LATENT_MODES, *(name for name in self.upscaler_names() if name not in LATENT_MODES)]

    def style_names(self) -> list[str]:
        return self._service.styles.names()

    def apply_styles(self, prompt: str, negative: str, names: list[str]) -> tuple[str, str]:
        """The prompts with the named styles applied as a job applies them (unknown names are skipped)."""
        styled, styled_negative, _missing = self._service.styles.apply(prompt, negative, names)
        return styled, styled_negative

    # -- work ----------------------------------------------------------------------------------------------------
    def upscale(self, image: Image.Image, upscaler: str, scale: float) -> Image.Image:
        """`image` scaled by `scale` with the named upscaler (NotFoundError lists the upscalers)."""
        registry = self._service.postprocess.upscalers
        entry = registry.find(upscaler)
        if entry.name == "None":
            return image
        return registry.upscale_by(image, entry.name, scale, self._service.settings.as_dict())

    def interrogate(self, image: Image.Image, model: str = "CLIP") -> str:
        """A caption ("CLIP", or "DeepBooru" which the postprocess service refuses with a clear message)."""
        name = "deepdanbooru" if model.casefold() in ("deepbooru", "deepdanbooru") else model.casefold()
        return self._service.postprocess.interrogate(image, name)
