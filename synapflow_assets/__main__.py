"""``python -m synapflow_assets <command>``: the command line of :mod:`synapflow_assets.cli`."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
