"""The detector's model lifecycle, the one module the rest of the package uses: register, gate, promote, load.

- register: :func:`train_and_register` (train, then the rest) or :func:`log_and_register` (a finished
  training run logged to MLflow and registered as a version of ``spine-detector``);
- gate and promote: :func:`promote_if_better` moves the alias ``champion`` to a version whose
  :func:`validation_score` beats the champion's on the same validation set (a :class:`GateDecision`);
- load: :func:`ensure_champion` (the shipped weights on an empty registry), :func:`champion_info`,
  :func:`load_champion`.

The implementation is split by concern: :mod:`.registry` (MLflow set-up and run logging),
:mod:`.gate` (the gate metric), :mod:`.champion` (the alias), :mod:`.train_register` and
:mod:`.shipping` (the shipped weights' metrics). ``test_layering`` checks that no other module of the
package, and no benchmark, imports them directly.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .champion import champion_info, ensure_champion, load_champion, promote_if_better
from .gate import GATE_KEY, SOURCE_TAG, GateDecision, folder_metrics, gate_rule, validation_score
from .registry import (
    ALIAS,
    MODEL_NAME,
    SHIPPED_FOLDER,
    ChampionInfo,
    RegistryError,
    log_training_run,
    model_version_for_run,
    tracking_uri,
    ui_links,
)

if TYPE_CHECKING:
    from .shipping import final_metrics
    from .train_register import Registration, TrainingOutcome, log_and_register, train_and_register

_NEED_TORCH = {
    "final_metrics": ".shipping",
    "Registration": ".train_register",
    "TrainingOutcome": ".train_register",
    "log_and_register": ".train_register",
    "train_and_register": ".train_register",
}
"""Names imported on first use, so that loading the Dagster definitions (which use this module) imports no torch."""


def __getattr__(name: str) -> Any:
    if name in _NEED_TORCH:
        return getattr(importlib.import_module(_NEED_TORCH[name], __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALIAS",
    "GATE_KEY",
    "MODEL_NAME",
    "SHIPPED_FOLDER",
    "SOURCE_TAG",
    "ChampionInfo",
    "GateDecision",
    "Registration",
    "RegistryError",
    "TrainingOutcome",
    "champion_info",
    "ensure_champion",
    "final_metrics",
    "folder_metrics",
    "gate_rule",
    "load_champion",
    "log_and_register",
    "log_training_run",
    "model_version_for_run",
    "promote_if_better",
    "tracking_uri",
    "train_and_register",
    "ui_links",
    "validation_score",
]
