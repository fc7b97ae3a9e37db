import os

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
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / pixel_um, 1 / pixel_um),
                     metadata={"spacing": spacing, "unit": "um", "axes": "ZYX"})
    return stack


@pytest.fixture
def instance():
    import dagster as dg

    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """An initialised empty MLflow database (creating the tables takes seconds; copying it does not)."""
    from synapflow_assets.detection import registry

    root = tmp_path_factory.mktemp("template")
    registry._client(registry._registry(root)).search_registered_models()
    return root / "mlflow" / "mlflow.db"


@pytest.fixture
def data_root(tmp_path, template_db):
    """A data root whose MLflow registry is empty and ready."""
    import shutil

    root = tmp_path / "data"
    (root / "mlflow").mkdir(parents=True)
    shutil.copy(template_db, root / "mlflow" / "mlflow.db")
    return root
