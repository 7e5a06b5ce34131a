"""One result from a script's several runs, as A1111's scripts return theirs: their own grids first (with
`index_of_first_image` after them), then the images, each with its infotext, seed and prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sdweb.extensions.api import GenerationResult


@dataclass
class Collected:
    """The images a script keeps from its runs, in order, with what the gallery and the API show for each."""

    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    first: GenerationResult | None = None  # the first run's result: its info is the template
    saved_paths: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    def add_run(self, result: GenerationResult, keep_images: bool = True) -> None:
        """A run's images (all of them) and its bookkeeping (notes, saved files, time, interruption)."""
        if self.first is None and result.images:
            self.first = result
        if keep_images:
            self.images += result.images
            self.infotexts += result.infotexts
            self.seeds += result.seeds
            self.subseeds += result.subseeds
            self.prompts += result.prompts
            self.negative_prompts += result.negative_prompts
        self.note_run(result)

    def note_run(self, result: GenerationResult) -> None:
        if self.first is None and result.images:
            self.first = result
        self.saved_paths += result.saved_paths
        self.notes += [note for note in result.notes if note not in self.notes]
        self.interrupted = self.interrupted or result.interrupted
        self.seconds = max(self.seconds, result.seconds)

    def add_image(self, image: Image.Image, infotext: str, seed: int, subseed: int, prompt: str,
                  negative_prompt: str) -> None:
        """An image the script made itself (a combined upscale, a grown canvas), with its infotext."""
        image.info["parameters"] = infotext
        self.images.append(image)
        self.infotexts.append(infotext)
        self.seeds.append(seed)
        self.subseeds.append(subseed)
        self.prompts.append(prompt)
        self.negative_prompts.append(negative_prompt)


def script_result(collected: Collected, grids: Sequence[tuple[Image.Image, str]] = (),
                  include_images: bool = True) -> GenerationResult:
    """The job's result: `grids` (image, infotext) first, then the collected images (unless left out, as the
    X/Y/Z plot does without "Include Sub Images"). The API's `info` is the first run's, with every returned
    image's infotext, all collected prompts and seeds, and A1111's `index_of_first_image` = the grid count."""
    result = GenerationResult(notes=list(collected.notes), saved_paths=list(collected.saved_paths),
                              interrupted=collected.interrupted, seconds=collected.seconds)
    first_seed = collected.seeds[0] if collected.seeds else -1
    first_subseed = collected.subseeds[0] if collected.subseeds else -1
    for image, infotext in grids:
        image.info["parameters"] = infotext
        result.images.append(image)
        result.infotexts.append(infotext)
        result.seeds.append(first_seed)
        result.subseeds.append(first_subseed)
        result.prompts.append(collected.prompts[0] if collected.prompts else "")
        result.negative_prompts.append(collected.negative_prompts[0] if collected.negative_prompts else "")
    if include_images:
        result.images += collected.images
        result.infotexts += collected.infotexts
        result.seeds += collected.seeds
        result.subseeds += collected.subseeds
        result.prompts += collected.prompts
        result.negative_prompts += collected.negative_prompts
    info = dict(collected.first.info) if collected.first is not None else {}
    info.update(infotexts=list(result.infotexts), all_prompts=list(collected.prompts),
                all_negative_prompts=list(collected.negative_prompts), all_seeds=list(collected.seeds),
                all_subseeds=list(collected.subseeds), index_of_first_image=len(grids))
    if collected.seeds:
        info.update(seed=first_seed, subseed=first_subseed)
    result.info = info
    return result
