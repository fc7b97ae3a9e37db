"""What a training run logs to MLflow: settings as parameters, measurements as metrics, no machine paths."""

import shutil

from synapflow_assets.detection import champion, registry

from .conftest import mlflow_client


def test_settings_are_params_and_paths_are_relative(tmp_path, data_root, embedded_registry):
    folder = tmp_path / "elsewhere" / "run1" / "best"
    shutil.copytree(registry.SHIPPED_FOLDER, folder)
    run_id = registry.log_training_run(
        folder,
        params={"out": str(data_root / "models" / "run1"), "init": str(folder), "steps": 2, "model": "tiny"},
        metrics={"val_ap50": 0.5, "val_raw": {"ap50": 0.5, "n_truth": 10, "score_threshold": 0.35, "seed": 424242}},
        history=[{"step": 1, "loss": 2.0, "val_raw": {"ap50": 0.4, "iou_threshold": 0.5, "centre_px": 4.0}}],
        data_root=data_root,
    )
    champion.ensure_champion(data_root)  # the shipped detector, registered from the installed package
    client = mlflow_client(data_root)
    for run in (client.get_run(run_id), client.get_run(champion.champion_info(data_root).run_id)):
        metrics, params = run.data.metrics, run.data.params
        assert not [k for k in metrics if k.rsplit(".", 1)[-1] in registry.SETTING_KEYS], sorted(metrics)
        assert not [v for v in params.values() if v.startswith("/") or str(tmp_path) in v], params
    params, metrics = client.get_run(run_id).data.params, client.get_run(run_id).data.metrics
    assert params["val_raw.score_threshold"] == "0.35" and params["val_raw.seed"] == "424242"
    assert params["out"] == "models/run1" and params["init"] == "run1/best" and params["steps"] == "2"
    assert metrics["val_raw.ap50"] == 0.5 and metrics["val_raw.n_truth"] == 10 and metrics["loss"] == 2.0
    shipped = client.get_run(champion.champion_info(data_root).run_id).data.params
    assert shipped["folder"] == "synapflow_assets/detection/shipped" and "val_raw.score_threshold" in shipped
