"""Registration and the champion gate of the spine detector on a temporary MLflow (SQLite) registry."""

import json
import shutil
from pathlib import Path

import pytest

from synapflow_assets.detection import champion as C
from synapflow_assets.detection import registry as R

from .conftest import mlflow_client, registered_versions, with_empty_registry

SHIPPED = Path(R.__file__).resolve().parent / "shipped"


pytestmark = pytest.mark.usefixtures("embedded_registry")


@pytest.fixture(scope="module")
def base_model_folder(tmp_path_factory):
    """The shipped detector if present, else a tiny one from the model builder."""
    if (SHIPPED / "model.safetensors").is_file() and (SHIPPED / "config.json").is_file():
        return SHIPPED
    try:
        from synapflow_assets.detection.inference import SpineDetector
        from synapflow_assets.detection.model import build_model, tiny_spec
    except ImportError as error:
        pytest.skip(f"no shipped detector and no model builder to make a tiny one ({error})")
    folder = tmp_path_factory.mktemp("tiny_model")
    SpineDetector(build_model(tiny_spec(), seed=0), tiny_spec()).save(folder)
    return folder


@pytest.fixture
def model_folder(tmp_path, base_model_folder):
    """A copy of the model whose metrics.json says val_ap50 = 0.5."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy(base_model_folder / name, folder / name)
    (folder / "metrics.json").write_text(
        json.dumps(
            {"val_ap50": 0.5, "val": {"f1": 0.4}, "history": [{"step": 0, "loss": 3.0}, {"step": 10, "loss": 1.5}]}
        )
    )
    return folder


def test_empty_registry_names_the_model_and_uri(data_root):
    with pytest.raises(R.RegistryError, match="no registered model 'spine-detector'") as error:
        C.load_champion(data_root)
    assert R.tracking_uri(data_root) in str(error.value)
    assert R.tracking_uri(data_root) == f"sqlite:///{(data_root / 'mlflow' / 'mlflow.db').resolve().as_posix()}"


def test_ensure_champion_registers_once_and_loads(data_root, model_folder):
    info = C.ensure_champion(data_root, shipped_folder=model_folder)
    assert (info.name, info.version) == ("spine-detector", "1")
    assert (info.folder / "model.safetensors").is_file() and (info.folder / "config.json").is_file()
    assert str(info.folder).startswith(str((data_root / "mlflow" / "artifacts").resolve()))
    again = C.ensure_champion(data_root, shipped_folder=model_folder)
    assert again == info and registered_versions(data_root) == [1]
    run = mlflow_client(data_root).get_run(info.run_id)
    assert run.data.metrics["val_ap50"] == 0.5 and run.data.metrics["val.f1"] == 0.4
    detector, loaded = C.load_champion(data_root)
    assert loaded == info and len(detector.types) >= 1


def test_gate_moves_champion_only_on_a_better_score(data_root, model_folder):
    C.ensure_champion(data_root, shipped_folder=model_folder)
    client = mlflow_client(data_root)

    def train(score):
        run_id = R.log_training_run(
            model_folder,
            {"steps": 10},
            {"val_ap50": score},
            [{"step": s, "loss": 2.0 / (s + 1)} for s in range(3)],
            data_root,
        )
        return run_id, R.model_version_for_run(run_id, data_root)

    run2, v2 = train(0.7)
    assert [m.value for m in client.get_metric_history(run2, "loss")] == [2.0, 1.0, 2.0 / 3]
    better = C.promote_if_better(v2, data_root=data_root)
    assert better.promoted and (better.version, better.previous_champion, better.champion) == (
        "2",
        "1",
        "2",
    )
    assert (better.new_score, better.champion_score) == (0.7, 0.5)
    run3, v3 = train(0.6)
    worse = C.promote_if_better(v3, data_root=data_root)
    assert not worse.promoted and worse.champion == "2" and worse.champion_score == 0.7
    _run4, v4 = train(0.7)
    tie = C.promote_if_better(v4, data_root=data_root)
    assert not tie.promoted and tie.champion == "2"
    assert C.champion_info(data_root).version == "2" and registered_versions(data_root) == [1, 2, 3, 4]
    logged = client.get_run(run3).data
    assert logged.tags["gate.decision"] == "kept" and logged.tags["gate.previous_champion"] == "2"
    assert logged.metrics["gate.new_score"] == 0.6 and logged.metrics["gate.champion_score"] == 0.7
    assert client.get_run(run2).data.tags["gate.decision"] == "promoted"
    assert client.get_model_version("spine-detector", "3").tags["gate.decision"] == "kept"


def test_missing_alias_is_named(data_root, model_folder):
    R.log_training_run(model_folder, {}, {"val_ap50": 0.3}, [], data_root)
    with pytest.raises(R.RegistryError, match="no alias 'champion'") as error:
        C.load_champion(data_root)
    assert "spine-detector" in str(error.value) and R.tracking_uri(data_root) in str(error.value)


def test_corrupt_weights_are_named(data_root, model_folder, tmp_path, template_db):
    info = C.ensure_champion(data_root, shipped_folder=model_folder)
    weights = info.folder / "model.safetensors"
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(R.RegistryError, match="corrupt weights") as error:
        C.load_champion(data_root)
    assert str(weights) in str(error.value) and "champion" in str(error.value)

    broken = tmp_path / "broken"
    shutil.copytree(model_folder, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    other_root = with_empty_registry(tmp_path / "other_root", template_db)
    with pytest.raises(R.RegistryError, match="corrupt weights") as error:
        C.ensure_champion(other_root, shipped_folder=broken)
    assert str(broken / "model.safetensors") in str(error.value)
    (broken / "config.json").unlink()
    with pytest.raises(R.RegistryError, match=r"lacks config\.json"):
        R.log_training_run(broken, {}, {}, [], data_root)


def test_the_shipped_detector_logs_its_training_config_as_params_and_links_to_the_mlflow_ui(data_root, monkeypatch):
    monkeypatch.setenv("SYNAPFLOW_MLFLOW_UI", "http://127.0.0.1:5999/")
    info = C.ensure_champion(data_root)
    run = mlflow_client(data_root).get_run(info.run_id)
    assert run.data.params["source"] == "shipped" and "command" in run.data.params
    assert {k for k in run.data.params if k.startswith("train.")} >= {"train.steps", "train.lr", "train.batch_size"}
    assert not any(k.startswith("training_config") for k in run.data.metrics)
    assert 0 < run.data.metrics["val_ap50"] <= 1
    links = R.ui_links(data_root, info)
    assert links["mlflow_model_version"] == f"http://127.0.0.1:5999/#/models/spine-detector/versions/{info.version}"
    assert links["mlflow_run"].endswith(f"/runs/{info.run_id}") and "/#/experiments/" in links["mlflow_run"]


@pytest.mark.parametrize(
    "champion, champion_score, sources, promoted, reason",
    [
        (None, None, (None, None), True, "no 'champion' alias yet"),
        ("3", 0.5, (None, None), False, "version 3 already is 'champion'"),
        ("1", None, (None, None), True, "'champion' version 1 has no 'val_ap50'"),
        ("1", 0.2, ("raw:seed=1", "raw:seed=2"), False, "different validation sets (raw:seed=1 vs raw:seed=2)"),
        ("1", 0.4, ("raw:seed=1", "raw:seed=1"), True, "val_ap50 0.5000 > 0.4000"),
        ("1", 0.5, ("raw:seed=1", None), False, "val_ap50 0.5000 <= 0.5000 (ties keep the champion)"),
    ],
)
def test_the_gate_rule(champion, champion_score, sources, promoted, reason):
    from synapflow_assets.detection.lifecycle import gate_rule

    decided, why = gate_rule(
        version="3",
        champion=champion,
        score_key="val_ap50",
        new_score=0.5,
        champion_score=champion_score,
        new_source=sources[0],
        champion_source=sources[1],
    )
    assert decided is promoted and reason in why


def test_processes_opening_a_new_registry_together_all_succeed(tmp_path):
    """Runs launched together on a new data root each open the registry first: MLflow creating its tables in
    all of them at once failed some with `table _alembic_tmp_experiments already exists`."""
    import os
    import subprocess
    import sys
    import time

    start = time.time() + 3.0
    code = (
        "import sys, time\n"
        "from synapflow_assets.detection import registry as R\n"
        f"time.sleep(max(0.0, {start} - time.time()))\n"
        "client = R.mlflow_client(R.open_registry(sys.argv[1]))\n"
        "print(len(client.search_experiments()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "data")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    assert [rc for rc, _, _ in results] == [0, 0, 0, 0], [err[-500:] for _, _, err in results]
    assert {out.strip() for _, out, _ in results} == {"1"}
