"""The detector's commands as functions of an argument list (``train-detector`` and ``detect`` of
:mod:`synapflow_assets.cli`), kept for the callers that import them from here."""

from __future__ import annotations

from collections.abc import Sequence

from ..cli import main

__all__ = ["detect_main", "train_detector_main"]


def train_detector_main(argv: Sequence[str]) -> int:
    """``python -m synapflow_assets train-detector ARGV...``.

    Parameters
    ----------
    argv : sequence of str

    Returns
    -------
    int
        The exit status (2 when registration fails; the message names the registry).
    """
    return main(["train-detector", *argv])


def detect_main(argv: Sequence[str]) -> int:
    """``python -m synapflow_assets detect ARGV...``.

    Parameters
    ----------
    argv : sequence of str

    Returns
    -------
    int
        The exit status: 0, or 2 on a bad input or model (the message names the file).
    """
    return main(["detect", *argv])
