"""Training runs end in MLflow: logged, registered as a new version, gated against the champion."""

import itertools
import json
import shutil

import dagster as dg
import numpy as np
import polars as pl
import pytest
import torch

from synapflow_assets.cli import main
from synapflow_assets.defs.detector_assets import spine_detector
from synapflow_assets.defs.resources import DataLake
from synapflow_assets.detection import champion as C
from synapflow_assets.detection import registry as R
from synapflow_assets.detection.gate import GATE_KEY, SOURCE_TAG, validation_score
from synapflow_assets.detection.inference import SpineDetector
from synapflow_assets.detection.model import build_model, tiny_spec
from synapflow_assets.detection.train_register import log_and_register
from synapflow_assets.detection.training import TrainConfig, lr_schedule, train

from .conftest import mlflow_client, registered_versions

TINY = {
    "steps": 2,
    "model": "tiny",
    "batch_size": 2,
    "sim_animals": 1,
    "sim_size": 64,
    "sim_crop": 64,
    "val_sim_animals": 1,
    "eval_every": 2,
    "raw_layers": 3,
    "val_raw_layers": 2,
}
TINY_CONFIG = TrainConfig(**TINY, checkpoint_every=2, pretrain_steps=0)
TINY_ARGS = [
    "--steps",
    "2",
    "--model",
    "tiny",
    "--batch-size",
    "2",
    "--sim-animals",
    "1",
    "--sim-size",
    "64",
    "--sim-crop",
    "64",
    "--val-sim-animals",
    "1",
    "--eval-every",
    "2",
    "--checkpoint-every",
    "2",
    "--raw-layers",
    "3",
    "--val-raw-layers",
    "2",
]


pytestmark = pytest.mark.usefixtures("embedded_registry", "no_shared_data")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny detector trained for two steps on simulated layers only (no registry)."""
    out = tmp_path_factory.mktemp("tiny_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYNAPFLOW_SHARED_DATA", str(out / "no-shared-data"))
        final = train(TINY_CONFIG, out, log=lambda line: None)
    return out, final


def gate_source(final):
    return validation_score(final["best"]["entry"])[1]


def _champion_folder(tmp_path, tiny_run, val_raw_ap50):
    """A registrable folder whose metrics.json scores ``val_raw_ap50`` on the tiny run's raw-like validation set."""
    out, final = tiny_run
    folder = tmp_path / f"champion-{val_raw_ap50}"
    shutil.copytree(out / "model", folder)
    raw = final["best"]["entry"]["val_raw"]
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "val_raw": {
                    "ap50": val_raw_ap50,
                    "n_truth": raw["n_truth"],
                    "n_images": raw["n_images"],
                    "seed": raw["seed"],
                }
            }
        )
    )
    return folder


@pytest.mark.parametrize("margin, promoted", [(-0.01, True), (0.01, False)])
def test_gate_moves_the_champion_only_when_the_new_run_scores_higher(tmp_path, data_root, tiny_run, margin, promoted):
    out, final = tiny_run
    new_score = final["best"]["entry"]["val_raw"]["ap50"]
    assert final["best"]["metric"] == "val_raw.ap50" and gate_source(final).startswith("raw:seed=")
    champion = _champion_folder(tmp_path, tiny_run, new_score + margin)
    result = log_and_register(out, final, TINY_CONFIG, data_root, shipped_folder=champion)
    gate = result.gate
    assert result.version == "2" and registered_versions(data_root) == [1, 2]
    assert gate.promoted is promoted and C.champion_info(data_root).version == ("2" if promoted else "1")
    assert gate.new_score == pytest.approx(new_score)
    assert gate.champion_score == pytest.approx(new_score + margin)
    assert gate.new_source == gate.champion_source == result.source
    run = mlflow_client(data_root).get_run(result.run_id).data
    assert run.metrics["gate.new_score"] == pytest.approx(new_score)
    assert run.metrics["gate.champion_score"] == pytest.approx(new_score + margin)
    assert run.tags["gate.decision"] == ("promoted" if promoted else "kept")


def test_spine_detector_asset_trains_registers_and_logs_the_gate(tmp_path, instance):
    lake = DataLake(root=str(tmp_path / "data"))
    result = dg.materialize(
        [spine_detector],
        instance=instance,
        resources={"lake": lake},
        run_config={"ops": {"spine_detector": {"config": {"train": True, **TINY}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("spine_detector")[0].metadata
    gate = metadata["gate"].value
    shipped_score, shipped_source = validation_score(json.loads((R.SHIPPED_FOLDER / "metrics.json").read_text()))
    assert metadata["trained_version"].value == "2" and registered_versions(lake.root) == [1, 2]
    assert gate["champion_score"] == pytest.approx(shipped_score) and gate["new_score"] >= 0
    assert not gate["promoted"] and "different validation sets" in gate["reason"]
    assert metadata["version"].value == "1"

    client = mlflow_client(lake.root)
    run = client.get_run(metadata["training_run_id"].value).data
    assert run.params["steps"] == "2" and run.params["model"] == "tiny"
    assert run.metrics[GATE_KEY] == pytest.approx(gate["new_score"]) and run.tags[SOURCE_TAG].startswith("raw:")
    assert [m.step for m in client.get_metric_history(metadata["training_run_id"].value, "loss")] == [2]
    assert run.tags["gate.decision"] == "kept"
    assert (C.champion_info(lake.root).folder.parent.parent / "artifacts" / "model" / "model.safetensors").is_file()

    shipped_run = client.get_run(C.champion_info(lake.root).run_id)
    assert shipped_run.data.metrics[GATE_KEY] == pytest.approx(shipped_score)
    assert shipped_run.data.tags[SOURCE_TAG] == shipped_source
    curve = client.get_metric_history(shipped_run.info.run_id, GATE_KEY)
    history = json.loads((R.SHIPPED_FOLDER / "history.json").read_text())
    assert sorted({m.step for m in curve}) == [h["step"] for h in history] and len(history) > 1


def test_train_command_registers_unless_told_not_to(tmp_path, data_root):
    assert (
        main(
            [
                "train-detector",
                *TINY_ARGS,
                "--out",
                str(tmp_path / "a"),
                "--data-root",
                str(tmp_path / "none"),
                "--no-register",
            ]
        )
        == 0
    )
    assert (tmp_path / "a" / "model" / "model.safetensors").is_file() and not (tmp_path / "none").exists()
    assert main(["train-detector", *TINY_ARGS, "--out", str(tmp_path / "b"), "--data-root", str(data_root)]) == 0
    assert registered_versions(data_root) == [1, 2]
    version = mlflow_client(data_root).get_model_version(R.MODEL_NAME, "2")
    assert version.tags["gate.decision"] in ("promoted", "kept") and version.tags["gate.score_key"] == GATE_KEY
    assert (
        version.description.startswith("train-detector --steps 2 --model tiny")
        and f"{GATE_KEY} " in version.description
    )


def test_detect_command_runs_the_champion_of_the_registry(tmp_path, data_root, capsys):
    from PIL import Image

    torch.manual_seed(0)
    folder = tmp_path / "tiny"
    SpineDetector(build_model(tiny_spec(), seed=3), tiny_spec(), device="cpu").save(folder)
    C.ensure_champion(data_root, shipped_folder=folder)
    layer = np.random.default_rng(1).integers(0, 255, (70, 90)).astype(np.uint8)
    Image.fromarray(layer).save(tmp_path / "a.png")
    out = tmp_path / "boxes.csv"
    assert (
        main(["detect", str(tmp_path / "a.png"), "--out", str(out), "--data-root", str(data_root), "--score", "0.0"])
        == 0
    )
    assert "spine-detector version 1 (champion)" in capsys.readouterr().out
    expected = SpineDetector.load(folder, device="cpu").detect_layer(layer, 0.0)
    table = pl.read_csv(out)
    assert len(table) == len(expected) > 0
    np.testing.assert_allclose(
        table.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
        expected.select("xmin", "ymin", "xmax", "ymax").to_numpy(),
        rtol=1e-4,
        atol=1e-3,
    )
    assert registered_versions(data_root) == [1]


@pytest.mark.parametrize("start_step", [0, 7])
def test_the_learning_rate_warms_up_then_decays_to_its_floor_at_the_last_step(start_step):
    config = TrainConfig(steps=20, warmup_steps=4, lr=1e-3, min_lr_fraction=0.1)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    schedule = lr_schedule(config, optimizer, start_step=start_step)
    rates = {}
    for step in range(start_step, config.steps):
        rates[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        schedule.step()
    decay = [rates[s] for s in range(max(start_step, config.warmup_steps - 1), config.steps)]
    assert all(a > b for a, b in itertools.pairwise(decay))
    assert rates[config.steps - 1] == pytest.approx(1e-4)
    assert rates[12] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 9 / 16))))
    if start_step == 0:
        assert [rates[s] for s in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
