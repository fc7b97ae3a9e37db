"""The training data of a detector: one pool of annotated layers per source, drawn by ``TrainConfig.pool_weights``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .data import Sample, raw_like_samples, simulated_samples, with_raw_background
from .real_data import labelled_samples, real_samples

if TYPE_CHECKING:
    from .train_config import TrainConfig


def training_pools(config: TrainConfig) -> dict[str, tuple[list[Sample], int]]:
    """Pool name -> (samples, crop size): the pools of ``config.pool_weights`` (a pool without weight is empty)."""
    weights = dict(config.pool_weights)
    wanted = lambda name: weights.get(name, 0) > 0
    real = real_samples("train")
    background_rng = np.random.default_rng([config.seed, 99])
    return {
        "raw": (
            raw_like_samples(config.raw_layers, config.seed * 1000 + 7, workers=config.threads)
            if wanted("raw")
            else [],
            config.sim_crop,
        ),
        "real_raw": (
            [with_raw_background(s, background_rng) for s in real for _ in range(config.raw_background_variants)]
            if wanted("real_raw")
            else [],
            config.crop,
        ),
        "real": (real, config.crop),
        "sim": (
            simulated_samples(config.sim_animals, config.seed * 1000 + 1, size=config.sim_size)
            if wanted("sim")
            else [],
            config.sim_crop,
        ),
        "extra": (
            labelled_samples(Path(config.extra_labels)) if config.extra_labels and wanted("extra") else [],
            config.crop,
        ),
    }
