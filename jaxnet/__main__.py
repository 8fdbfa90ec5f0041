"""``python -m jaxnet ...``: the same command line as ``jaxnet ...``."""

import sys

from jaxnet.cli import main

if __name__ == "__main__":
    sys.exit(main())
