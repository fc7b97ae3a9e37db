"""Asset `spine_detector`: the champion detector of the MLflow registry (trained on request)."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from ..detection.lifecycle import RegistryError, ensure_champion, ui_links
from ..detection.train_config import TrainConfig
from .config_models import config_schema
from .metadata import labels, materialized
from .resources import DataLake

TRAINING_OPTIONS = (
    "steps",
    "seed",
    "model",
    "batch_size",
    "sim_animals",
    "sim_size",
    "sim_crop",
    "val_sim_animals",
    "raw_layers",
    "val_raw_layers",
    "init",
    "extra_labels",
    "eval_every",
    "real_val",
)
"""The `TrainConfig` fields that the asset's run config exposes (the others keep their defaults)."""

TRAINING_CONFIG = config_schema(
    TrainConfig,
    names=TRAINING_OPTIONS,
    defaults={"steps": 600},
    extra={"train": (bool, False, "Train a new detector (off: only make sure a champion exists).")},
)
"""Run config of `spine_detector`: leave `train` off to only make sure a champion exists. With `train: true` the
asset runs the same training, MLflow logging, registration and champion gate as `python -m synapflow_assets
train-detector`; the other fields are `TrainConfig`'s (600 steps by default here: small values give a quick run)."""


def train_and_register(lake: DataLake, run_name: str, config: Mapping[str, Any], log=print):
    """Train a detector into `<data>/models/<run_name>`, log it to MLflow, register it and gate it.

    Returns
    -------
    TrainingOutcome
        See :func:`synapflow_assets.detection.lifecycle.train_and_register`.
    """
    from ..detection import lifecycle

    options = {k: v for k, v in config.items() if k != "train"}
    train_config = TrainConfig(**options, checkpoint_every=max(options["eval_every"], 50))
    return lifecycle.train_and_register(
        train_config, lake.model_runs / run_name, lake.registry_root, run_name=run_name, log=log
    )


@dg.asset(
    code_version="1",
    kinds={"mlflow", "pytorch"},
    group_name="detection",
    pool="mlflow",
    config_schema=TRAINING_CONFIG,
    **labels("model"),
)
def spine_detector(
    context: dg.AssetExecutionContext,
    lake: DataLake,
) -> dg.MaterializeResult:
    """The transformer spine detector (RT-DETR) registered as `spine-detector`; its data version is the
    registered version of the alias `champion`, so detections downstream go stale when it changes."""
    metadata = {}
    try:
        if context.op_execution_context.op_config["train"]:
            result = train_and_register(
                lake, context.run.run_id, context.op_execution_context.op_config, log=context.log.info
            )
            done = result.registration
            assert done is not None  # registered: train_and_register was asked to
            gate = done.gate
            metadata = {
                "trained_version": done.version,
                "training_run_id": done.run_id,
                "gate": dg.MetadataValue.json({k: v for k, v in gate.as_dict().items() if k != "version"}),
            }
        champion = ensure_champion(lake.registry_root)
        links = ui_links(lake.registry_root, champion)
    except (RegistryError, ValueError) as error:
        raise dg.Failure(description=str(error)) from error
    return materialized(
        context,
        data_version=dg.DataVersion(f"{champion.name}:{champion.version}"),
        metadata={
            "model": champion.name,
            "version": champion.version,
            "run_id": champion.run_id,
            **{name: dg.MetadataValue.url(url) for name, url in links.items()},
            "weights": dg.MetadataValue.path(str(champion.folder)),
            **metadata,
        },
    )
