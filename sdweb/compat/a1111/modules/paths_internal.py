"""A1111's `modules.paths_internal`: the same folders as `modules.paths`."""

from sdweb.compat.a1111.modules.paths import __getattr__

__all__ = ["__getattr__"]
