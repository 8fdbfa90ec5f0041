"""``python -m jaxnet.studies NAME ...``: see :mod:`jaxnet.studies.command`."""

import sys

from jaxnet.studies.command import main

if __name__ == "__main__":
    sys.exit(main())
