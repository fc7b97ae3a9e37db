"""Asset ``spine_detector``: the champion detector of the MLflow registry (trained on request)."""
import dagster as dg

import json

from ..detection.registry import RegistryError, ensure_champion, log_training_run, model_version_for_run, promote_if_better
from .resources import DataLake


class DetectorTrainingConfig(dg.Config):
    """Run config of ``spine_detector``: leave ``train`` off to only make sure a champion exists."""

    train: bool = False
    steps: int = 600
    seed: int = 0


def train_and_register(lake: DataLake, run_name: str, steps: int, seed: int) -> dict:
    """Train a detector with our training command, register it, and let the gate decide on ``champion``."""
    from ..detection.cli import train_detector_main

    out = lake.model_runs / run_name
    status = train_detector_main(["--steps", str(steps), "--seed", str(seed), "--out", str(out)])
    if status:
        raise RegistryError(f"training into {out} failed with status {status}")
    history = json.loads((out / "history.json").read_text())
    evaluations = [h for h in history if "val_ap50" in h] if isinstance(history, list) else []
    metrics = {"val_ap50": evaluations[-1]["val_ap50"]} if evaluations else {}
    run_id = log_training_run(out / "model", params={"steps": steps, "seed": seed}, metrics=metrics,
                              history=history if isinstance(history, list) else [], data_root=lake.root, run_name=run_name)
    return promote_if_better(model_version_for_run(run_id, lake.root), data_root=lake.root)


@dg.asset(code_version="1", kinds={"mlflow", "pytorch"}, group_name="detection", pool="mlflow")
def spine_detector(context: dg.AssetExecutionContext, config: DetectorTrainingConfig, lake: DataLake) -> dg.MaterializeResult:
    """The transformer spine detector (RT-DETR) registered as ``spine-detector``; its data version is the
    registered version of the alias ``champion``, so detections downstream go stale when it changes."""
    try:
        if config.train:
            context.log.info(str(train_and_register(lake, context.run_id, config.steps, config.seed)))
        champion = ensure_champion(lake.root)
    except RegistryError as error:
        raise dg.Failure(description=str(error)) from error
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"{champion.name}:{champion.version}"),
        metadata={"model": champion.name, "version": champion.version, "run_id": champion.run_id,
                  "weights": dg.MetadataValue.path(str(champion.folder))},
    )
