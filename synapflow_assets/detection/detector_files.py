"""A detector's folder: ``model.safetensors`` (weights, nothing unpickled) and ``config.json`` (its spec and
inference options)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import SynapFlowError
from .model import DetectorSpec, build_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CONFIG_FORMAT = "synapflow-spine-detector"


class DetectorError(SynapFlowError, ValueError):
    """A detector folder that cannot be used (missing or corrupt file); the message names the file."""


def write_detector_files(folder, model: torch.nn.Module, config: dict) -> None:
    """Write the weights of ``model`` and ``config`` into ``folder`` (created if needed)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": CONFIG_FORMAT})
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))


def read_detector_files(folder) -> tuple[torch.nn.Module, DetectorSpec, dict]:
    """The model (built from the config's spec, weights loaded), its spec and the config's inference options.

    Raises
    ------
    DetectorError
        Naming the file: missing folder or file, unreadable JSON, an unknown
        config, corrupt weights or weights that do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise DetectorError(f"{path}: detector file is missing")
    try:
        config = json.loads(config_path.read_text())
        if config.get("format") != CONFIG_FORMAT:
            raise ValueError(f"not a {CONFIG_FORMAT} config")
        spec = DetectorSpec.from_dict(config["spec"])
        options = config.get("inference", {})
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DetectorError(f"{config_path}: invalid detector config ({error})") from error
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise DetectorError(f"{weights_path}: corrupt or unreadable weights ({error})") from error
    model = build_model(spec, seed=None)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise DetectorError(f"{weights_path}: weights do not fit {config_path} ({error})") from error
    if missing or unexpected:
        raise DetectorError(
            f"{weights_path}: weights do not fit {config_path} "
            f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})"
        )
    return model, spec, options
