"""`python -m sdweb`: same as the `sdweb` console script."""

import sys

from sdweb.cli import main

if __name__ == "__main__":
    sys.exit(main())
