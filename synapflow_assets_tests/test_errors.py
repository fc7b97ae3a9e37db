"""Every error the package raises on purpose derives from one base, SynapFlowError, and keeps its builtin base."""

import importlib
import inspect
import pkgutil

import pytest

import synapflow_assets
from synapflow_assets.errors import SynapFlowError

OPTIONAL = {"dask", "distributed", "dagster_dask", "dagster_postgres", "psycopg2"}
"""Packages of the `scale` extra: the modules that need them are skipped where it is not installed."""


def package_errors() -> dict[str, type]:
    """``{"module.Class": class}`` for every exception class defined in a module of the package."""
    found = {}
    for info in pkgutil.walk_packages(synapflow_assets.__path__, prefix="synapflow_assets."):
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as error:
            # dask re-raises a missing `distributed` with a message of its own: the name is on its cause
            names = {(e.name or "").split(".")[0] for e in (error, error.__cause__) if isinstance(e, ImportError)}
            if names & OPTIONAL:
                continue
            raise
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Exception)
                and not issubclass(obj, Warning)
                and obj.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_the_walk_finds_the_error_classes():
    errors = package_errors()
    assert {
        "synapflow_assets.errors.SynapFlowError",
        "synapflow_assets.imaging.errors.InputError",
        "synapflow_assets.imaging.keys.InvalidKeyError",
    } <= set(errors), sorted(errors)


def test_every_error_of_the_package_is_a_synapflow_error():
    outside = sorted(name for name, cls in package_errors().items() if not issubclass(cls, SynapFlowError))
    assert outside == [], (
        f"derive these from synapflow_assets.errors.SynapFlowError (keep their builtin base): {outside}"
    )


@pytest.mark.parametrize(
    "name, builtin",
    [
        ("synapflow_assets.imaging.errors.InputError", ValueError),
        ("synapflow_assets.imaging.keys.InvalidKeyError", ValueError),
        ("synapflow_assets.tracking.depth.BoxError", ValueError),
        ("synapflow_assets.detection.detector_files.DetectorError", ValueError),
        ("synapflow_assets.tracking.incremental.AlignmentFailed", ValueError),
        ("synapflow_assets.pipeline.IngestBusy", RuntimeError),
        ("synapflow_assets.detection.registry.RegistryError", RuntimeError),
        ("synapflow_assets.store.feature_store.StoreError", RuntimeError),
    ],
)
def test_errors_keep_their_builtin_base(name, builtin):
    """Code that catches ValueError or RuntimeError still catches them."""
    module, _, cls = name.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), cls), builtin)


def test_an_invalid_key_raises_a_synapflow_error():
    from synapflow_assets.imaging.keys import validate_key

    with pytest.raises(SynapFlowError, match=r"invalid animal '\.\./x'") as error:
        validate_key("../x", "animal")
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)


def test_a_bad_settings_file_raises_a_synapflow_error_naming_the_file(tmp_path):
    from synapflow_assets.settings import SETTINGS_FILE, load_settings

    (tmp_path / SETTINGS_FILE).write_text("imaging:\n  pixel_size_um: -1\n")
    with pytest.raises(SynapFlowError, match=SETTINGS_FILE) as error:
        load_settings(tmp_path)
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)
