"""The command line: one click group (:mod:`.app`) whose subcommands live in one module per domain.

``python -m synapflow_assets <command>`` and the ``synapflow`` script both run :func:`main`.
"""

from .app import app, main

__all__ = ["app", "main"]
