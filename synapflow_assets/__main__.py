"""``python -m synapflow_assets <command>``: the command line of :mod:`synapflow_assets.cli`."""

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    from .stopping import exit_process

    exit_process(main())
