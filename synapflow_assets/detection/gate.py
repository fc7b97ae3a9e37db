"""The champion gate's metric: one validation score, logged under the same key for every version.

The gate metric ``val_ap50`` is the class-agnostic COCO AP50 (IoU 0.5,
:func:`.evaluation.detection_scores`) of the training evaluation: on the
held-out raw-like layers (``val_raw``: rendered two-photon layers with noise,
background, axons and debris, of a fixed seed no training run uses) when the
run evaluated them; for older runs, on the real validation split
(``spine2d_polygons/val``), else on the held-out simulated layers. The set it
was measured on is recorded in the run tag ``val_ap50.source``
(``raw:seed=424242,layers=16,n_truth=...``, ``real:n_truth=102`` or
``sim:seed=0,size=256,animals=2,n_truth=215``), and
:func:`champion.promote_if_better` only compares scores measured on the same
set; otherwise it keeps the champion. The rule itself, :func:`gate_rule`, and its
result, :class:`GateDecision`, are plain (no registry).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .registry import ALIAS

GATE_KEY = "val_ap50"
SOURCE_TAG = "val_ap50.source"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validation_score(entry: dict, training_config: dict | None = None) -> tuple[float, str]:
    """The gate score of one evaluation entry and the name of its validation set.

    Parameters
    ----------
    entry : dict
        An evaluation of the training loop (``history.json`` entry or
        ``metrics.json``) with nested ``val_raw``, ``val_real`` and / or
        ``val_sim`` dicts holding ``ap50`` (and ``n_truth``).
    training_config : dict, optional
        The run's ``TrainConfig`` as a dict; names the simulated set.

    Returns
    -------
    (float, str)
        AP50 and its source.

    Raises
    ------
    ValueError
        When the entry holds none of ``val_raw.ap50``, ``val_real.ap50`` and ``val_sim.ap50``.
    """
    raw, real, sim = entry.get("val_raw"), entry.get("val_real"), entry.get("val_sim")
    if isinstance(raw, dict) and _finite(raw.get("ap50")):
        return float(raw["ap50"]), (
            f"raw:seed={raw.get('seed', '?')},layers={raw.get('n_images', '?')},n_truth={raw.get('n_truth', '?')}"
        )
    if isinstance(real, dict) and _finite(real.get("ap50")):
        return float(real["ap50"]), f"real:n_truth={real.get('n_truth', '?')}"
    if isinstance(sim, dict) and _finite(sim.get("ap50")):
        config = training_config or entry.get("training_config") or {}
        return float(sim["ap50"]), (
            f"sim:seed={config.get('seed', '?')},size={config.get('sim_size', '?')},"
            f"animals={config.get('val_sim_animals', '?')},n_truth={sim.get('n_truth', '?')}"
        )
    raise ValueError(f"evaluation has none of val_raw.ap50, val_real.ap50, val_sim.ap50 (keys {sorted(entry)})")


def with_gate_metric(history: list[dict]) -> list[dict]:
    """History entries with ``val_ap50`` added, so the gate metric also has a learning curve."""
    out = []
    for entry in history:
        try:
            score, _ = validation_score(entry)
        except ValueError:
            out.append(dict(entry))
            continue
        out.append({**entry, GATE_KEY: score})
    return out


def folder_metrics(folder) -> tuple[dict, list[dict], dict]:
    """Metrics, learning curves and gate tags of a model folder (e.g. the shipped one).

    Parameters
    ----------
    folder : path-like
        Holds ``metrics.json`` (an evaluation entry, as written by training)
        and optionally ``history.json`` (the learning curves; a ``history``
        list inside ``metrics.json`` is used when the file is absent).

    Returns
    -------
    (dict, list of dict, dict)
        Metrics with ``val_ap50`` added when it can be computed, history
        entries, and the tags (``val_ap50.source``).

    Raises
    ------
    ValueError
        When a JSON file cannot be parsed (the message names it).
    """
    folder = Path(folder)
    metrics, history = {}, []
    for name in (METRICS_FILE, HISTORY_FILE):
        path = folder / name
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_text())
        except ValueError as error:
            raise ValueError(f"unreadable {path}: {error}") from error
        if name == METRICS_FILE and isinstance(value, dict):
            metrics = value
        elif name == HISTORY_FILE and isinstance(value, list):
            history = value
    if not history and isinstance(metrics.get("history"), list):
        history = metrics["history"]
    history = [h for h in history if isinstance(h, dict)]
    metrics = {k: v for k, v in metrics.items() if k != "history"}
    tags = {}
    try:
        score, source = validation_score(metrics)
    except ValueError:
        pass
    else:
        metrics[GATE_KEY], tags[SOURCE_TAG] = score, source
    return metrics, with_gate_metric(history), tags


@dataclass(frozen=True)
class GateDecision:
    """What the champion gate decided for one registered version.

    Attributes
    ----------
    promoted : bool
        Whether the version became the champion.
    version : str
        The candidate version.
    previous_champion, champion : str or None
        The champion before and after the gate.
    score_key : str
        The metric compared (``val_ap50``).
    new_score, champion_score : float or None
        The candidate's and the previous champion's score (None: the champion has none).
    new_source, champion_source : str or None
        The validation sets each score was measured on; scores of different sets are not compared.
    reason : str
        One line: why.
    """

    promoted: bool
    version: str
    previous_champion: str | None
    champion: str | None
    score_key: str
    new_score: float
    champion_score: float | None
    new_source: str | None
    champion_source: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (for metadata and printed results)."""
        return asdict(self)


def gate_rule(
    *,
    version: str,
    champion: str | None,
    score_key: str,
    new_score: float,
    champion_score: float | None,
    new_source: str | None,
    champion_source: str | None,
) -> tuple[bool, str]:
    """Whether ``version`` takes the alias from ``champion``, and why (see :func:`promote_if_better`)."""
    if champion is None:
        return True, f"no '{ALIAS}' alias yet"
    if champion == version:
        return False, f"version {version} already is '{ALIAS}'"
    if champion_score is None:
        return True, f"'{ALIAS}' version {champion} has no '{score_key}'"
    if new_source and champion_source and new_source != champion_source:
        return False, (
            f"{score_key} measured on different validation sets ({new_source} vs {champion_source}): "
            "the champion is kept"
        )
    if new_score > champion_score:
        return True, f"{score_key} {new_score:.4f} > {champion_score:.4f}"
    return False, f"{score_key} {new_score:.4f} <= {champion_score:.4f} (ties keep the champion)"
