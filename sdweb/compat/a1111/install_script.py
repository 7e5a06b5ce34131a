"""`python -m sdweb.compat.a1111.install_script <install.py>`: run an extension's install.py as A1111's launcher
does, with `launch` and `modules.*` importable in its scope (launch.run_pip goes through sdweb's pip guard)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from sdweb.compat.a1111.scope import SCOPED_BUILTINS, add_extension_root


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m sdweb.compat.a1111.install_script <extension>/install.py", file=sys.stderr)
        return 2
    script = Path(argv[0]).resolve()
    add_extension_root(script.parent)
    sys.path.insert(0, str(script.parent))
    sys.argv = [str(script)]
    runpy.run_path(str(script), init_globals={"__builtins__": SCOPED_BUILTINS}, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
