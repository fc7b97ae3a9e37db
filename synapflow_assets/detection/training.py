"""Train the spine detector: simulated pre-training, real fine-tuning, checkpoints, learning curve."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..setting_sections import DEFAULT_SCORE_THRESHOLD
from ..synthetic.params import SimulationParams
from .batches import AugmentParams, make_batch
from .checkpoints import STATE_FILE, load_optimizer, save_checkpoint
from .data import Sample, raw_like_samples, simulated_samples
from .evaluation import detection_scores
from .inference import SpineDetector
from .invivo import invivo_layers, invivo_scores
from .model import DetectorSpec, build_model, count_parameters, tiny_spec
from .pools import training_pools
from .real_data import real_samples
from .train_config import TrainConfig
from .type_loss import type_weighted_loss, type_weights

#: Pixel size of the chronic simulator's layers.
SIM_PIXEL_SIZE_UM = SimulationParams().voxel_size_um[2]
#: Seed of the held-out raw-like validation layers (never a training seed: those are ``seed * 1000 + 7``).
VAL_RAW_SEED = 424_242
CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
FINAL_DIR = "model"
HISTORY_FILE = "history.json"


def model_spec(name: str) -> DetectorSpec:
    """The named architecture (``default`` or ``tiny``)."""
    if name == "tiny":
        return tiny_spec()
    if name == "default":
        return DetectorSpec()
    raise ValueError(f"unknown model {name!r} (expected 'default' or 'tiny')")


def lr_schedule(config: TrainConfig, optimizer: torch.optim.Optimizer, *, start_step: int = 0):
    """The learning-rate schedule of a run, positioned at ``start_step``.

    Linear warm-up from ``lr / warmup_steps`` (step 0) to ``lr`` (step
    ``warmup_steps - 1``), then cosine decay to ``min_lr_fraction * lr`` at the
    last step (``steps - 1``).

    Parameters
    ----------
    config : TrainConfig
    optimizer : torch.optim.Optimizer
        Its parameter groups get the scheduled rate now and at each ``step()``.
    start_step : int
        The step the next optimiser step is (a resumed run's step).

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
    """
    from transformers import get_cosine_with_min_lr_schedule_with_warmup_lr_rate

    for group in optimizer.param_groups:
        group["initial_lr"] = config.lr
    return get_cosine_with_min_lr_schedule_with_warmup_lr_rate(
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=config.steps,
        min_lr_rate=config.min_lr_fraction,
        last_epoch=start_step - 1,
    )


def _box_table(frames: list, names: list[str]):
    import polars as pl

    tables = [f.with_columns(pl.lit(n).alias("image")) for f, n in zip(frames, names, strict=False)]
    return pl.concat(tables) if tables else pl.DataFrame()


def truth_table(samples: list[Sample], types: list[str]):
    """The true boxes of annotated samples as the COCO evaluator's table (``image``, box, ``type``)."""
    import polars as pl

    rows = [
        pl.DataFrame(
            {
                "image": [s.name] * len(s.boxes),
                "xmin": s.boxes[:, 0].astype(np.float64),
                "ymin": s.boxes[:, 1].astype(np.float64),
                "xmax": s.boxes[:, 2].astype(np.float64),
                "ymax": s.boxes[:, 3].astype(np.float64),
                "type": [types[int(k)] for k in s.labels],
            },
            schema={
                "image": pl.String,
                "xmin": pl.Float64,
                "ymin": pl.Float64,
                "xmax": pl.Float64,
                "ymax": pl.Float64,
                "type": pl.String,
            },
        )
        for s in samples
    ]
    return pl.concat(rows)


def evaluate(detector: SpineDetector, samples: list[Sample], score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> dict:
    """COCO scores (:func:`.evaluation.detection_scores`, the one AP50 of the project) of a detector
    on annotated samples, each at its known pixel size or, when unknown, the estimated one.

    Boxes down to score 0.05 enter the AP; precision, recall and F1 are at ``score_threshold``. Undefined ratios
    (NaN, e.g. precision when no box reaches the threshold) are left out, except ``ap50``.

    Parameters
    ----------
    detector : SpineDetector
    samples : list of Sample
    score_threshold : float

    Returns
    -------
    dict
        ``ap50``, ``map50``, ``ap50_per_type``, ``precision``, ``recall``, ``f1``, ``n_truth``, ...
    """
    frames = [detector.detect_layer(s.image, score_threshold=0.05, pixel_size_um=s.pixel_size_um) for s in samples]
    truth = truth_table(samples, detector.types)
    predicted = _box_table(frames, [s.name for s in samples])
    scores = detection_scores(truth, predicted)
    at_threshold = detection_scores(truth, predicted.filter(predicted["score"] >= score_threshold), per_type=False)
    scores.update(
        {
            k: at_threshold[k]
            for k in (
                "precision",
                "recall",
                "f1",
                "tp",
                "fp",
                "fn",
                "n_predicted",
                "precision_centre",
                "recall_centre",
                "f1_centre",
                "tp_centre",
            )
        }
    )
    scores["score_threshold"] = score_threshold
    return {k: v for k, v in scores.items() if not (isinstance(v, float) and math.isnan(v) and k != "ap50")}


def validation_sets(config: TrainConfig) -> dict:
    """The held-out sets every evaluation scores: ``val_raw`` (raw-like layers of ``VAL_RAW_SEED``, the
    gate's set), ``val_sim`` (chronic-simulator layers), ``val_real`` (``spine2d_polygons/val``, when present
    and ``config.real_val``) and ``val_invivo`` (the in-vivo layers, when present)."""
    sets: dict[str, list] = {
        "val_raw": raw_like_samples(config.val_raw_layers, VAL_RAW_SEED, workers=config.threads),
        "val_sim": simulated_samples(config.val_sim_animals, 10_000_000 + config.seed, size=config.sim_size, layers=12),
    }
    if config.real_val:
        sets["val_real"] = real_samples("val")
    sets["val_invivo"] = invivo_layers()
    return {name: value for name, value in sets.items() if value}


def score_validation(detector: SpineDetector, sets: dict, score_threshold: float) -> dict:
    """Scores of a detector on :func:`validation_sets`, one entry per set (training curves, shipping, gate)."""
    entry = {}
    for name, samples in sets.items():
        if name == "val_invivo":
            entry[name] = {k: v for k, v in invivo_scores(detector, samples, score_threshold).items() if k != "boxes"}
        else:
            entry[name] = evaluate(detector, samples, score_threshold)
    if "val_raw" in entry:
        entry["val_raw"]["seed"] = VAL_RAW_SEED
    return entry


def _starting_detector(config: TrainConfig, resume: Path | None, device, log) -> tuple[SpineDetector, dict]:
    """The detector training starts from (a checkpoint, the ``init`` weights or a new model set to the
    training's tile and pixel size) and the state it had reached: step, wall seconds, history and best."""
    state: dict = {"step": 0, "wall_seconds": 0.0, "history": [], "best": None}
    if resume is not None:
        resume = Path(resume)
        detector = SpineDetector.load(resume, device=device)
        state.update(json.loads((resume / STATE_FILE).read_text()))
        state["history"] = state.get("history") or []
        log(
            f"resumed from {resume} at step {int(state['step'])} "
            f"({float(state['wall_seconds']):.0f} s of earlier training)"
        )
    elif config.init:
        detector = SpineDetector.load(config.init, device=device)
        log(f"fine-tuning {config.init}")
    else:
        torch.manual_seed(config.seed)
        spec = model_spec(config.model)
        detector = SpineDetector(build_model(spec, config.seed), spec, device=device)
    detector.tile = max(config.crop, config.sim_crop)
    detector.pixel_size_um = config.pixel_size_um
    detector.upscale, detector.box_scale = 1.0, 1.0
    return detector, state


def _pool_of_step(config: TrainConfig, step: int, names: list[str], shares: np.ndarray, rng) -> str:
    """The training pool one step draws its batch from (raw-like only during pre-training from scratch)."""
    source = names[int(rng.choice(len(names), p=shares))]
    if step < config.pretrain_steps and not config.init and "raw" in names:
        source = "raw"
    return source


def _eval_line(done: int, entry: dict) -> str:
    """One log line of an evaluation during training."""
    return (
        f"eval step {done}: raw AP50 {entry['val_raw']['ap50']:.3f} mAP50 "
        f"{entry['val_raw'].get('map50', 0):.3f}"
        f" | sim AP50 {entry.get('val_sim', {}).get('ap50', float('nan')):.3f}"
        + (
            f" | real AP50 {entry['val_real']['ap50']:.3f} mAP50 {entry['val_real'].get('map50', 0):.3f}"
            if "val_real" in entry
            else ""
        )
        + (
            f" | in vivo found {entry['val_invivo']['found']:.2f} ratio {entry['val_invivo']['count_ratio']:.2f}"
            if "val_invivo" in entry
            else ""
        )
        + f" ({entry['eval_seconds']} s)"
    )


def _pool_mix(config: TrainConfig, pools: dict) -> tuple[list[str], np.ndarray]:
    """The training pools that have samples and a weight, and their shares of the batches."""
    weights = dict(config.pool_weights)
    names = [n for n in pools if pools[n][0] and weights.get(n, 0) > 0]
    if not names:
        raise ValueError("no training data: every pool with a weight is empty")
    shares = np.array([weights[n] for n in names], np.float64)
    return names, shares / shares.sum()


def _optimise(model, optimizer, pixels, targets, device, grad_clip: float) -> float | None:
    """One optimiser step on a batch (gradients clipped); its loss, or None when the loss is not finite (the
    step is skipped)."""
    pixels = pixels.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    loss = model(pixel_values=pixels, labels=targets).loss
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return None
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach())


def _keep_if_best(best: dict | None, done: int, entry: dict, detector: SpineDetector, out: Path) -> dict | None:
    """The best evaluation so far (by raw-like AP50); a new best is saved to ``best/`` with its metrics."""
    score = entry["val_raw"]["ap50"]
    if best is not None and not score > best["score"]:
        return best
    detector.save(out / BEST_DIR)
    (out / BEST_DIR / "metrics.json").write_text(json.dumps(entry, indent=2))
    return {"step": done, "score": score, "metric": "val_raw.ap50", "entry": entry}


def train(config: TrainConfig, out: Path, resume: Path | None = None, log=print, progress=None) -> dict:
    """Train (or continue) a detector; write checkpoints, ``history.json``, ``best/`` and ``model/``.

    Parameters
    ----------
    config : TrainConfig
    out : Path
        Output folder.
    resume : Path, optional
        A checkpoint folder written by an earlier run (``<out>/checkpoint``).
    log : callable
        Receives progress lines.
    progress : callable, optional
        Called as ``progress(steps_done, steps_total)`` after each step.

    Returns
    -------
    dict
        The final state: step, wall seconds, last and best validation metrics.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, config.threads))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    detector, earlier = _starting_detector(config, resume, device, log)
    start_step, wall_before = int(earlier["step"]), float(earlier["wall_seconds"])
    history, best = earlier["history"], earlier["best"]
    model = detector.model
    log(f"model: {count_parameters(model) / 1e6:.2f}M parameters, strides {detector.spec.strides}, device {device}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if resume is not None:
        load_optimizer(resume, optimizer)
    schedule = lr_schedule(config, optimizer, start_step=start_step)

    t0 = time.perf_counter()
    pools = training_pools(config)
    validation = validation_sets(config)
    names, shares = _pool_mix(config, pools)
    size = {name: len(samples) for name, (samples, _) in pools.items()}
    log(
        f"data: {size['raw']} raw-like layers, {size['real_raw']} real images on raw background, {size['real']} real, "
        f"{size['sim']} simulated, {size['extra']} corrected; val "
        + ", ".join(f"{len(v)} {k.removeprefix('val_')}" for k, v in validation.items())
        + f" ({time.perf_counter() - t0:.1f} s)"
    )
    if config.type_weight_power > 0:
        labels = (sample.labels for name in names for sample in pools[name][0])
        weights = type_weights(labels, len(detector.spec.types), power=config.type_weight_power)
        model.loss_function = type_weighted_loss(weights)  # type: ignore[assignment]
        log("type weights: " + ", ".join(f"{t} {w:.2f}" for t, w in zip(detector.spec.types, weights, strict=True)))
    augment = AugmentParams(model_pixel_size_um=config.pixel_size_um)

    def wall() -> float:
        return wall_before + time.perf_counter() - t_start

    def run_eval(step: int, loss: float) -> dict:
        model.eval()
        entry = {"step": step, "loss": loss, "wall_seconds": round(wall(), 1)}
        t = time.perf_counter()
        entry.update(score_validation(detector, validation, config.eval_score_threshold))
        entry["eval_seconds"] = round(time.perf_counter() - t, 1)
        model.train()
        return entry

    def state_dict(step: int) -> dict:
        return {
            "step": step,
            "wall_seconds": round(wall(), 1),
            "config": asdict(config),
            "history": history,
            "best": best,
        }

    t_start = time.perf_counter()
    model.train()
    losses: list[float] = []
    step = start_step
    for step in range(start_step, config.steps):
        rng = np.random.default_rng([config.seed, step])
        torch.manual_seed(config.seed * 1_000_003 + step)
        source = _pool_of_step(config, step, names, shares, rng)
        pool, crop = pools[source]
        pixels, targets = make_batch(pool, config.batch_size, crop, rng, augment)
        loss = _optimise(model, optimizer, pixels, targets, device, config.grad_clip)
        if loss is not None:
            losses.append(loss)
        lr = schedule.get_last_lr()[0]
        schedule.step()
        done = step + 1
        if progress is not None:
            progress(done, config.steps)
        if done % 10 == 0:
            log(f"step {done} loss {np.mean(losses[-10:]):.3f} ({source}) lr {lr:.2e} wall {wall():.0f} s")
        timed_out = config.max_minutes > 0 and time.perf_counter() - t_start > config.max_minutes * 60
        if done % config.eval_every == 0 or done == config.steps or timed_out:
            entry = run_eval(done, float(np.mean(losses[-config.eval_every :])) if losses else float("nan"))
            history.append(entry)
            log(_eval_line(done, entry))
            best = _keep_if_best(best, done, entry, detector, out)
            (out / HISTORY_FILE).write_text(json.dumps(history, indent=2))
        if done % config.checkpoint_every == 0 or done == config.steps or timed_out:
            save_checkpoint(out / CHECKPOINT_DIR, detector, optimizer, state_dict(done))
        if timed_out:
            log(f"wall limit of {config.max_minutes} min reached at step {done}")
            break
    else:
        done = max(step + 1, start_step) if config.steps > start_step else start_step
    detector.model.eval()
    detector.save(out / FINAL_DIR)
    final = state_dict(done)
    (out / HISTORY_FILE).write_text(json.dumps(history, indent=2))
    (out / "final_state.json").write_text(json.dumps({k: v for k, v in final.items() if k != "history"}, indent=2))
    return final
