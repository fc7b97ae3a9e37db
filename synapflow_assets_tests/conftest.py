import os
import shutil

import numpy as np
import pytest
import tifffile
from scipy import ndimage

os.environ.setdefault("SYNAPFLOW_SETTLE_SECONDS", "0")
"""Files the tests write are complete at once (the rule itself is tested in test_landing.py)."""


def write_stack(path, layers=6, size=(96, 128), seed=0, spacing=1.5, pixel_um=0.2, shifts=None):
    """A textured uint16 ImageJ stack whose layers are displaced by ``shifts`` (z, 2)."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random(size).astype(np.float32), 2.5) * 5000 + 200
    shifts = np.zeros((layers, 2)) if shifts is None else np.asarray(shifts)
    stack = np.stack([ndimage.shift(base, -s, order=3, mode="nearest") for s in shifts])
    stack = rng.poisson(stack).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / pixel_um, 1 / pixel_um),
        metadata={"spacing": spacing, "unit": "um", "axes": "ZYX"},
    )
    return stack


@pytest.fixture
def instance():
    import dagster as dg

    with dg.instance_for_test() as test_instance:
        yield test_instance


def _forget_mlflow_server(patch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        patch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """An initialised empty MLflow database (creating the tables takes seconds; copying it does not)."""
    root = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as patch:
        _forget_mlflow_server(patch)
        mlflow_client(root).search_registered_models()
    return root / "mlflow" / "mlflow.db"


def with_empty_registry(root, template_db):
    """``root`` with a copy of the empty MLflow database of ``template_db`` in ``root/mlflow``."""
    (root / "mlflow").mkdir(parents=True)
    shutil.copy(template_db, root / "mlflow" / "mlflow.db")
    return root


@pytest.fixture
def data_root(tmp_path, template_db):
    """A data root whose MLflow registry is empty and ready."""
    return with_empty_registry(tmp_path / "data", template_db)


@pytest.fixture
def embedded_registry(monkeypatch):
    """The MLflow registry is the SQLite file under the test's own data root: a server named by
    ``MLFLOW_TRACKING_URI`` or ``MLFLOW_REGISTRY_URI`` in the environment is never used."""
    _forget_mlflow_server(monkeypatch)


@pytest.fixture
def no_shared_data(monkeypatch, tmp_path):
    """``SYNAPFLOW_SHARED_DATA`` names a missing folder: training sees simulated and bundled data only."""
    monkeypatch.setenv("SYNAPFLOW_SHARED_DATA", str(tmp_path / "no-shared-data"))


def mlflow_client(data_root):
    """The MLflow client of the registry under ``data_root``."""
    from synapflow_assets.detection import registry

    return registry.mlflow_client(registry.open_registry(data_root))


def registered_versions(data_root) -> list[int]:
    """The version numbers of the spine detector registered under ``data_root``, ascending."""
    from synapflow_assets.detection import registry

    return sorted(
        int(v.version) for v in mlflow_client(data_root).search_model_versions(f"name='{registry.MODEL_NAME}'")
    )


def promote_shipped_copy(data_root, folder):
    """Register a copy of the shipped detector (in ``folder``) as a run scoring val_ap50 0.99 and
    put it through the champion gate; returns the gate's decision."""
    from synapflow_assets.detection import champion, registry

    shutil.copytree(registry.SHIPPED_FOLDER, folder)
    run = registry.log_training_run(
        folder, params={"test": True}, metrics={"val_ap50": 0.99}, history=[], data_root=data_root
    )
    return champion.promote_if_better(registry.model_version_for_run(run, data_root), data_root=data_root)


SLOW_MODULES = {
    "test_consensus",
    "test_detector_training",
    "test_ducklake_writers",
    "test_feature_assets",
    "test_napari_export",
    "test_object_store",
    "test_raw_detection",
    "test_real_inputs",
    "test_reliability",
    "test_reliability_landing",
    "test_reliability_limits",
    "test_reliability_signals",
    "test_review",
    "test_review_ui",
    "test_self_training",
    "test_session_assets",
    "test_timelapse_lab",
    "test_web_ui",
}
"""Modules that run whole labs through Dagster, start servers or a browser, or train a model: marked ``slow``, run
by ``make test-slow`` (CI runs it after ``make test``). Together they took 1,230 of the suite's 1,570 worker
seconds (``--durations=0``, 2 workers); the rest keeps ``make test`` within 5 minutes."""


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
