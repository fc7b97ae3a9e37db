"""Copy a trained detector into the package (``detection/shipped``) with its final metrics and history."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from ..setting_sections import DEFAULT_SCORE_THRESHOLD
from .detector_files import CONFIG_FILE, WEIGHTS_FILE
from .inference import SpineDetector
from .registry import SHIPPED_FOLDER
from .throughput import layers_per_second
from .training import HISTORY_FILE, STATE_FILE, TrainConfig, score_validation, validation_sets

COMMAND_FILE = "COMMAND"


def final_metrics(
    detector: SpineDetector, seed: int = 0, score_threshold: float = DEFAULT_SCORE_THRESHOLD, threads: int = 2
) -> dict:
    """Validation figures of a detector, on the same sets as training's evaluation: held-out raw-like
    layers (the gate's set), the real val split, the in-vivo layers, held-out simulated layers; throughput.

    Parameters
    ----------
    detector : SpineDetector
    seed : int
        Seed of the training run (the held-out simulated animals depend on it).
    score_threshold : float
    threads : int

    Returns
    -------
    dict
    """
    torch.set_num_threads(threads)
    sets = validation_sets(TrainConfig(seed=seed, threads=threads))
    out = {"score_threshold": score_threshold, **score_validation(detector, sets, score_threshold)}
    out["layers_per_second_512"] = round(layers_per_second(detector, 512, layers=8, threads=threads), 2)
    return out


def ship(run_folder, command: str, source: str = "best", dest=None, seed: int = 0) -> dict:
    """Copy ``<run>/<source>`` into ``dest`` (default: the package's shipped folder) with metrics and history.

    Parameters
    ----------
    run_folder : path-like
        Output folder of a training run.
    command : str
        The exact training command(s), recorded in ``metrics.json``.
    source : str
        ``best``, ``model`` or ``checkpoint``.
    dest : path-like, optional
    seed : int

    Returns
    -------
    dict
        The metrics written.
    """
    run_folder = Path(run_folder)
    dest = Path(dest) if dest is not None else SHIPPED_FOLDER
    detector = SpineDetector.load(run_folder / source, device="cpu")
    state_file = run_folder / "checkpoint" / STATE_FILE
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    history = json.loads((run_folder / HISTORY_FILE).read_text()) if (run_folder / HISTORY_FILE).exists() else []
    best_step = (state.get("best") or {}).get("step") if source == "best" else state.get("step")
    start = time.perf_counter()
    metrics = final_metrics(detector, seed)
    metrics.update(
        {
            "source": f"{source} of the training run",
            "step": best_step,
            "training_steps_total": state.get("step"),
            "training_wall_seconds": state.get("wall_seconds"),
            "training_config": state.get("config"),
            "command": command,
            "parameters": sum(p.numel() for p in detector.model.parameters()),
            "metrics_seconds": round(time.perf_counter() - start, 1),
        }
    )
    dest.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(run_folder / source / name, dest / name)
    (dest / "history.json").write_text(json.dumps(history, indent=2))
    (dest / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (dest / COMMAND_FILE).write_text(command.rstrip() + "\n")
    return metrics
