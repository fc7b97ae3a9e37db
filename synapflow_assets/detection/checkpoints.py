"""Training checkpoints: weights, optimizer moments (safetensors) and state (JSON), written atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .inference import SpineDetector

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def save_checkpoint(folder: Path, detector: SpineDetector, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Write weights, optimizer moments (safetensors) and state (JSON) atomically into ``folder``."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    detector.save(tmp)
    tensors, meta = {}, {}
    for i, value in enumerate(optimizer.state.values()):
        for key, tensor in value.items():
            tensors[f"{i}.{key}"] = (
                torch.as_tensor(tensor).detach().cpu().contiguous().reshape(-1)
                if key == "step"
                else tensor.detach().cpu().contiguous()
            )
    order = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    meta = {str(i): order[id(param)] for i, param in enumerate(optimizer.state)}
    save_file(tensors, str(tmp / OPTIMIZER_FILE), metadata={"param_index": json.dumps(meta)})
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load_optimizer(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore the optimizer moments written by :func:`save_checkpoint` (nothing when there are none)."""
    from safetensors import safe_open

    path = folder / OPTIMIZER_FILE
    if not path.exists():
        return
    params = [p for g in optimizer.param_groups for p in g["params"]]
    with safe_open(str(path), "pt") as handle:
        meta = json.loads(handle.metadata()["param_index"])
        grouped: dict[str, dict] = {}
        for key in handle.keys():  # noqa: SIM118 (a safetensors file, not a dict)
            index, name = key.split(".", 1)
            grouped.setdefault(index, {})[name] = handle.get_tensor(key)
    for index, value in grouped.items():
        param = params[meta[index]]
        if "step" in value:
            value["step"] = value["step"].reshape(())
        optimizer.state[param] = {k: v.to(param.device) for k, v in value.items()}
