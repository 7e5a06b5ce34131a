"""A1111's `modules.paths_internal` (the same names as modules.paths)."""

from sdweb.compat.a1111.modules.paths import __getattr__, script_path, sd_path

__all__ = ["__getattr__", "script_path", "sd_path"]
