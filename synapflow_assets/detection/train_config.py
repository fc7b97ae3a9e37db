"""The options of a detector training run (no torch: the command line and the Dagster config read them)."""

from __future__ import annotations

from dataclasses import dataclass

from ..setting_sections import DEFAULT_SCORE_THRESHOLD


@dataclass
class TrainConfig:
    """Everything a training run depends on.

    Attributes
    ----------
    steps : int
        Total optimiser steps (including resumed ones).
    batch_size : int
    crop : int
        Crop size of real-data batches (pixels).
    sim_crop : int
        Crop size of simulated batches.
    pretrain_steps : int
        First steps on raw-like layers only (when not fine-tuning).
    lr, weight_decay, grad_clip : float
        AdamW settings and gradient-norm clipping.
    warmup_steps : int
        Linear learning-rate warm-up (see :func:`lr_schedule`).
    min_lr_fraction : float
        Cosine decay of the learning rate to this fraction at the last step (see :func:`lr_schedule`).
    seed : int
    sim_animals : int
        Simulated animals in the training pool.
    sim_size : int
        Pixels per side of the simulated layers.
    val_sim_animals : int
        Held-out simulated animals for validation.
    eval_every, checkpoint_every : int
    eval_score_threshold : float
        Operating point of precision / recall / F1.
    model : str
        ``default`` or ``tiny`` (see :mod:`.model`).
    threads : int
        Torch CPU threads.
    max_minutes : float
        Stop (with a checkpoint) after this wall time of this process; 0 = no limit.
    real_val : bool
        Evaluate on the real validation split when present.
    pixel_size_um : float
        Pixel size the detector works at; every input is resampled to it.
    raw_layers : int
        Rendered raw-like layers in the training pool.
    val_raw_layers : int
        Held-out raw-like layers (their own fixed seed) for validation and the gate.
    raw_background_variants : int
        Raw-like copies of each real training image (masked background replaced).
    pool_weights : tuple of (str, float)
        Share of batches from each pool: ``raw`` (rendered raw-like layers),
        ``real_raw`` (real images with a raw background), ``real`` (real images
        as they are), ``sim`` (layers of the chronic simulator) and ``extra``
        (``extra_labels``).
    init : str
        A detector folder to start from (fine-tuning); empty: random weights.
    extra_labels : str
        A CSV of corrected boxes on registered volumes (``review --labels``),
        added as the ``extra`` pool; empty: none.
    type_weight_power : float
        Class-balanced loss: a spine of a type weighs ``(count / mean count) ** -power`` in the
        classification loss, counted over the training pools (0: every type alike; 0.5: a type
        100 times rarer weighs 10 times more, at most 5x the mean; see :mod:`.type_loss`).

    The detector's inference tile is set to the larger crop size: its boxes are
    sized relative to its input, so tiles much larger than the training crops
    give boxes too large (about 2x for 512 px tiles after 256-320 px crops).
    """

    steps: int = 2000
    batch_size: int = 4
    crop: int = 320
    sim_crop: int = 256
    pretrain_steps: int = 300
    lr: float = 2e-4
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    warmup_steps: int = 50
    min_lr_fraction: float = 0.1
    seed: int = 0
    sim_animals: int = 40
    sim_size: int = 256
    val_sim_animals: int = 2
    eval_every: int = 100
    checkpoint_every: int = 50
    eval_score_threshold: float = DEFAULT_SCORE_THRESHOLD
    model: str = "default"
    threads: int = 2
    max_minutes: float = 0.0
    real_val: bool = True
    pixel_size_um: float = 0.12
    raw_layers: int = 300
    val_raw_layers: int = 16
    raw_background_variants: int = 1
    pool_weights: tuple = (("raw", 0.4), ("real_raw", 0.35), ("real", 0.15), ("sim", 0.1), ("extra", 0.2))
    init: str = ""
    extra_labels: str = ""
    type_weight_power: float = 0.0
