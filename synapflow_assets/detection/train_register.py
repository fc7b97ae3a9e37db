"""Train a detector, log it to MLflow, register a version and apply the champion gate (no dagster).

Used by both ``python -m synapflow_assets train-detector`` and the asset
``spine_detector`` (run config ``train: true``), so a model never reaches the
registry by another path.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .gate import GATE_KEY, SOURCE_TAG, validation_score, with_gate_metric
from .training import BEST_DIR, FINAL_DIR, TrainConfig, train

if TYPE_CHECKING:
    from .gate import GateDecision


@dataclass(frozen=True)
class Registration:
    """A finished training run logged to MLflow, the version registered from it and the gate's decision."""

    run_id: str
    version: str
    weights: str
    """The folder registered (``best/`` when written, else ``model/``)."""
    step: int | None
    """The training step of those weights."""
    score: float
    """The gate metric (`GATE_KEY`) of those weights."""
    source: str
    """The validation set the score was measured on."""
    gate: GateDecision
    """The decision of :func:`champion.promote_if_better`, with both scores."""


@dataclass(frozen=True)
class TrainingOutcome:
    """What :func:`train_and_register` did."""

    final: dict
    """The training state (as :func:`training.train` returned it, without the history)."""
    registration: Registration | None
    """None when trained with ``register=False``."""


def _registered_weights(out: Path, final: dict) -> tuple[Path, dict]:
    """The folder to register (``best/`` when written, else ``model/``) and its evaluation entry."""
    best = final.get("best") or {}
    if best.get("entry") and (out / BEST_DIR / "model.safetensors").is_file():
        return out / BEST_DIR, best["entry"]
    history = final.get("history") or []
    if not history:
        raise ValueError(
            f"training into {out} ran no evaluation; nothing to gate (raise --steps or lower --eval-every)"
        )
    return out / FINAL_DIR, history[-1]


def log_and_register(
    out,
    final: dict,
    config: TrainConfig,
    data_root: str | os.PathLike = "data",
    run_name: str | None = None,
    resume=None,
    shipped_folder=None,
    tags: dict | None = None,
) -> Registration:
    """Log a finished training run, register its weights and apply the gate.

    Parameters
    ----------
    out : path-like
        The training output folder (``best/``, ``model/``, ``history.json``).
    final : dict
        What :func:`training.train` returned.
    config : TrainConfig
    data_root : path-like
        Data folder holding ``mlflow/``.
    run_name : str, optional
    resume : path-like, optional
        Checkpoint the run continued from (logged as a parameter).
    shipped_folder : path-like, optional
        Registered first when the registry has no champion, so that a new
        run always competes with one (the package's shipped model by default).
    tags : dict, optional
        More run tags (e.g. what a self-training run learned from).

    Returns
    -------
    Registration
    """
    from . import champion, registry

    out = Path(out)
    folder, entry = _registered_weights(out, final)
    config_dict = asdict(config)
    score, source = validation_score(entry, config_dict)
    metrics = {k: entry[k] for k in ("val_raw", "val_real", "val_invivo", "val_sim") if isinstance(entry.get(k), dict)}
    metrics.update(
        {
            GATE_KEY: score,
            "registered_step": entry.get("step", final.get("step")),
            "steps": final.get("step"),
            "training_wall_seconds": final.get("wall_seconds"),
        }
    )
    params = {**config_dict, "out": str(out), "resume": str(resume) if resume else "", "weights": folder.name}
    champion.ensure_champion(data_root, **({} if shipped_folder is None else {"shipped_folder": shipped_folder}))
    description = (
        f"train-detector --steps {config.steps} --model {config.model}"
        + (f" --init {config.init}" if config.init else "")
        + (f" --extra-labels {config.extra_labels}" if config.extra_labels else "")
        + f"; pools {dict(config.pool_weights)}; weights {folder.name} at step {entry.get('step', final.get('step'))}; "
        + f"{GATE_KEY} {score:.3f} on {source}"
    )
    run_id = registry.log_training_run(
        folder,
        params,
        metrics,
        with_gate_metric(final.get("history") or []),
        data_root=data_root,
        run_name=run_name,
        tags={SOURCE_TAG: source, **(tags or {})},
        description=description,
    )
    version = registry.model_version_for_run(run_id, data_root)
    decision = champion.promote_if_better(version, score_key=GATE_KEY, data_root=data_root)
    return Registration(run_id, version, str(folder), metrics["registered_step"], score, source, decision)


def train_and_register(
    config: TrainConfig,
    out,
    data_root: str | os.PathLike = "data",
    resume=None,
    register: bool = True,
    run_name: str | None = None,
    log=print,
    shipped_folder=None,
    progress=None,
    tags: dict | None = None,
) -> TrainingOutcome:
    """Train (or continue) a detector, then log, register and gate it.

    Parameters
    ----------
    config : TrainConfig
    out : path-like
        Training output folder.
    data_root : path-like
    resume : path-like, optional
        A checkpoint folder (``<out>/checkpoint``) to continue from.
    register : bool
        False: train only (nothing is logged to MLflow).
    run_name : str, optional
    log : callable
        Receives progress lines.
    shipped_folder : path-like, optional
        See :func:`log_and_register`.
    progress : callable, optional
        Called as ``progress(steps_done, steps_total)`` after each training step.
    tags : dict, optional
        More run tags (see :func:`log_and_register`).

    Returns
    -------
    TrainingOutcome
    """
    final = train(config, Path(out), Path(resume) if resume else None, log=log, progress=progress)
    state = {k: v for k, v in final.items() if k != "history"}
    if not register:
        return TrainingOutcome(state, None)
    done = log_and_register(out, final, config, data_root, run_name, resume, shipped_folder, tags)
    gate = done.gate
    log(
        f"registered {done.weights} (step {done.step}) as spine-detector version {done.version}; "
        f"gate {GATE_KEY} [{done.source}]: new {gate.new_score:.4f} vs champion "
        f"{gate.champion_score if gate.champion_score is None else round(gate.champion_score, 4)} "
        f"-> {'promoted' if gate.promoted else 'kept'} ({gate.reason}); champion is {gate.champion}"
    )
    return TrainingOutcome(state, done)
