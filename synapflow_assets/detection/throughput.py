"""Inference throughput of a detector (layers per second) on random layers."""

from __future__ import annotations

import time

import numpy as np
import torch


def layers_per_second(
    detector, size: int = 512, layers: int = 8, threads: int = 2, batch_size: int = 4, seed: int = 0
) -> float:
    """Layers per second of ``detector.detect_stack`` on ``layers`` random uint16 layers of ``size`` px.

    Parameters
    ----------
    detector : SpineDetector
    size, layers, threads, batch_size, seed : int

    Returns
    -------
    float
        After one warm-up call.
    """
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    stack = rng.integers(100, 3000, (layers, size, size)).astype(np.uint16)
    detector.detect_stack(stack[:1], batch_size=batch_size)
    start = time.perf_counter()
    detector.detect_stack(stack, batch_size=batch_size)
    return layers / (time.perf_counter() - start)
