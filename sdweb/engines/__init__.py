"""One engine per denoiser kind (a family record's ``engine``): everything that differs between an SD-style
UNet and a flow-matching transformer — prompt encoding, the noise table, the latent shape, the network call
with its conditioning, previews. Generation asks :func:`engine_for` and never tests a family name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdweb.engines.base import Engine
    from sdweb.models.families import Family


def engine_for(family: Family) -> Engine:
    """The engine that runs models of this family (imported on first use: the engines sit above generation's
    shared parts, which import this module)."""
    if family.engine == "flow":
        from sdweb.engines.flow.engine import FLOW_ENGINE

        return FLOW_ENGINE
    from sdweb.engines.unet import UNET_ENGINE

    return UNET_ENGINE
