"""Versioning of the spine detector in MLflow (plain Python, no dagster).

Embedded default: tracking and model registry in SQLite at
``<data root>/mlflow/mlflow.db``, artifacts under ``<data root>/mlflow/artifacts``
(set explicitly as the experiment's artifact location; no server needed).
To use an MLflow server instead, set ``MLFLOW_TRACKING_URI`` (and, if
different, ``MLFLOW_REGISTRY_URI``) before calling these functions. The UI on
the embedded store: ``mlflow ui --backend-store-uri sqlite:///data/mlflow/mlflow.db``.

Each training run logs its parameters, final metrics, learning curves (one
metric per step) and the model folder (``model.safetensors``, ``config.json``,
``metrics.json``) under the run's artifact path ``model``, and registers a new
version of the registered model ``spine-detector`` whose source is that
artifact path (no pickled pyfunc: the weights are loaded with
``SpineDetector.load``). The alias ``champion`` marks the version in use; it
moves only through :func:`.champion.promote_if_better` (a validation gate,
logged with both scores) or, on an empty registry, :func:`.champion.ensure_champion`. The gate
metric ``val_ap50`` and its validation set are defined in :mod:`.gate`;
training runs reach the registry through :mod:`.train_register`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..environment import Environment
from ..errors import SynapFlowError

MODEL_NAME = "spine-detector"
ALIAS = "champion"
EXPERIMENT = "spine-detector"
ARTIFACT_PATH = "model"
MODEL_FILES = ("model.safetensors", "config.json", "metrics.json")
REQUIRED_FILES = ("model.safetensors", "config.json")
SHIPPED_FOLDER = Path(__file__).resolve().parent / "shipped"

log = logging.getLogger(__name__)


class RegistryError(SynapFlowError, RuntimeError):
    """The model registry cannot provide what was asked; the message names the registry URI,
    the model, the alias or the file concerned."""


class ChampionInfo(NamedTuple):
    """The registered version that the alias ``champion`` points to.

    Attributes
    ----------
    name : str
        Registered model name.
    version : str
        Model version (a decimal string, as MLflow returns it).
    run_id : str
        The MLflow run that logged the weights.
    folder : pathlib.Path
        Local folder with ``model.safetensors`` and ``config.json``.
    """

    name: str
    version: str
    run_id: str
    folder: Path


@dataclass(frozen=True)
class Registry:
    uri: str
    registry_uri: str
    artifact_root: Path
    data_root: Path

    def describe(self) -> str:
        return self.uri if self.uri == self.registry_uri else f"{self.uri} (registry {self.registry_uri})"


# --------------------------------------------------------------------------- set-up


def tracking_uri(data_root: str | os.PathLike = "data") -> str:
    """The embedded tracking / registry URI of a data root.

    Parameters
    ----------
    data_root : path-like
        The project's data folder (``data`` by default).

    Returns
    -------
    str
        ``sqlite:///<absolute data root>/mlflow/mlflow.db``, unless
        ``MLFLOW_TRACKING_URI`` is set, which then wins.
    """
    env = Environment.read().mlflow_tracking_uri
    if env:
        return env
    return f"sqlite:///{(Path(data_root).resolve() / 'mlflow' / 'mlflow.db').as_posix()}"


def open_registry(data_root) -> Registry:
    data_root = Path(data_root).resolve()
    uri = tracking_uri(data_root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return Registry(
        uri=uri,
        registry_uri=Environment.read().mlflow_registry_uri or uri,
        artifact_root=data_root / "mlflow" / "artifacts",
        data_root=data_root,
    )


def mlflow_client(reg: Registry):
    from mlflow.tracking import MlflowClient

    for uri in {reg.uri, reg.registry_uri}:
        _check_sqlite(uri)
    with _first_use(reg):
        return MlflowClient(tracking_uri=reg.uri, registry_uri=reg.registry_uri)


_READY: set[str] = set()
"""SQLite registries this process has opened once (their tables exist)."""


@contextmanager
def _first_use(reg: Registry):
    """The first opening in this process of a SQLite registry, under a file lock: MLflow creates its tables when a
    client is made, and runs starting together on a new data root (``dg dev`` launching one per session) raced
    there and failed with ``table _alembic_tmp_experiments already exists``."""
    from filelock import FileLock

    paths = sorted({u.removeprefix("sqlite:///") for u in (reg.uri, reg.registry_uri) if u.startswith("sqlite:///")})
    if not set(paths) - _READY:
        yield
        return
    with contextlib.ExitStack() as locks:
        for path in paths:
            locks.enter_context(FileLock(f"{path}.create.lock"))
        yield
    _READY.update(paths)


def _check_sqlite(uri: str) -> None:
    """A clear error for a damaged SQLite backend, instead of SQLAlchemy's traceback at first use."""
    import sqlite3

    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # an empty database is fine (MLflow creates its tables); another application's is not
        problem = (
            None
            if not tables or {"experiments", "alembic_version"} <= tables
            else (f"its tables ({', '.join(sorted(tables)[:4])}) are not MLflow's")
        )
    except sqlite3.DatabaseError as error:
        problem = str(error)
    if problem is not None:
        raise RegistryError(
            f"{path}: not a readable MLflow database ({problem}); restore it from a backup, or move "
            "it aside to start an empty registry (the shipped detector is registered again)"
        )


def _experiment_id(client, reg: Registry) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    from mlflow.exceptions import MlflowException

    location = None  # a tracking server decides where its artifacts live (e.g. an S3 bucket)
    if not reg.uri.startswith(("http://", "https://")):
        reg.artifact_root.mkdir(parents=True, exist_ok=True)
        location = reg.artifact_root.as_uri()
    try:
        return client.create_experiment(EXPERIMENT, artifact_location=location)
    except MlflowException:  # created concurrently
        return client.get_experiment_by_name(EXPERIMENT).experiment_id


def is_missing(error) -> bool:
    return getattr(error, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------- logging


SETTING_KEYS = frozenset({"score_threshold", "iou_threshold", "centre_px", "seed"})
"""Leaves of an evaluation that are the settings it was made with, not measurements: logged as parameters."""


def split_settings(values: dict, prefix: str = "") -> tuple[dict, dict]:
    """A (nested) dict of results without its settings (:data:`SETTING_KEYS`, at any depth), and those
    settings as ``{"a.b": value}``."""
    measured, settings = {}, {}
    for key, value in values.items():
        if isinstance(value, dict):
            measured[key], found = split_settings(value, f"{prefix}{key}.")
            settings.update(found)
        elif key in SETTING_KEYS:
            settings[f"{prefix}{key}"] = value
        else:
            measured[key] = value
    return measured, settings


PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def portable(value, data_root: str | os.PathLike = "data") -> str:
    """A parameter value as logged: an absolute path of this machine becomes relative (to the working folder,
    the data root or the package's folder, in that order), or its last two components when it lies elsewhere;
    anything else is its string."""
    text = str(value)
    if not os.path.isabs(text):
        return text
    path = Path(text).resolve()
    for base in (Path.cwd(), Path(data_root).resolve(), PACKAGE_PARENT):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix() or "."
    return "/".join(path.parts[-2:])


def _flat_numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) dict as ``{"a.b": float}``; NaN and non-numbers are dropped."""
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_numbers(value, f"{name}."))
        elif isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(float(value))):
            out[name] = float(value)
    return out


def check_model_folder(folder: Path) -> None:
    folder = Path(folder)
    if not folder.is_dir():
        raise RegistryError(f"model folder {folder} does not exist")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise RegistryError(f"model folder {folder} lacks {name}")
    check_weights(folder / "model.safetensors")


def check_weights(path: Path) -> None:
    """Parse the safetensors header (cheap) so that a corrupt file is caught by name."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            keys = list(handle.keys())
    except Exception as error:
        raise RegistryError(f"corrupt weights file {path}: {error}") from error
    if not keys:
        raise RegistryError(f"corrupt weights file {path}: no tensors")


def log_training_run(
    model_folder,
    params: dict,
    metrics: dict,
    history: list[dict],
    data_root: str | os.PathLike = "data",
    run_name: str | None = None,
    tags: dict | None = None,
    description: str | None = None,
) -> str:
    """Log one training run and register its weights as a new version of ``spine-detector``.

    Parameters
    ----------
    model_folder : path-like
        Folder with ``model.safetensors`` and ``config.json`` (and optionally
        ``metrics.json``); its files are logged under the artifact path ``model``.
    params : dict
        Training parameters (values are logged as strings; absolute paths relative, see :func:`portable`).
    metrics : dict
        Final metrics, logged at the last step of ``history`` (after its
        values, so they are the run's latest); nested dicts are flattened to ``a.b`` names and
        non-numeric or NaN values are skipped. The gate reads ``val_ap50`` by
        default, so log the validation score under that name. The settings
        among them (:data:`SETTING_KEYS`, e.g. ``val_raw.score_threshold``) are
        logged as parameters instead.
    history : list of dict
        Learning curves: one dict per evaluation with ``step`` (else its index)
        and any numeric values (``loss``, ``val_f1`` ...), each logged as a
        metric at that step (settings are not).
    data_root : path-like
        Data folder holding ``mlflow/``.
    run_name : str, optional
    tags : dict, optional
        Run tags, e.g. ``val_ap50.source`` (the validation set of the gate metric).
    description : str, optional
        Description of the registered model version (how it was trained, on what, its scores).

    Returns
    -------
    str
        The run id. The registered version is in the run's tag
        ``registered_version`` (see :func:`model_version_for_run`).

    Raises
    ------
    RegistryError
        When the folder lacks a required file or the weights are corrupt.
    """
    from mlflow.entities import Metric, Param

    folder = Path(model_folder)
    check_model_folder(folder)
    reg = open_registry(data_root)
    client = mlflow_client(reg)
    experiment_id = _experiment_id(client, reg)
    run = client.create_run(
        experiment_id,
        run_name=run_name,
        tags={"model_name": MODEL_NAME, **{str(k): str(v) for k, v in (tags or {}).items()}},
    )
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        history = [split_settings(row)[0] for row in history]
        metrics, settings = split_settings(metrics)
        logged = {**{k: str(v) for k, v in settings.items()}, **{k: portable(v, data_root) for k, v in params.items()}}
        param_list = [Param(str(k)[:250], v[:6000]) for k, v in logged.items()]
        metric_list, last_step = [], 0
        for index, row in enumerate(history):
            step = int(row.get("step", index))
            last_step = max(last_step, step)
            metric_list += [
                Metric(k, v, now, step) for k, v in _flat_numbers({k: v for k, v in row.items() if k != "step"}).items()
            ]
        metric_list += [Metric(k, v, now + 1, last_step) for k, v in _flat_numbers(metrics).items()]
        for start in range(0, max(len(param_list), 1), 100):
            client.log_batch(run_id, params=param_list[start : start + 100])
        for start in range(0, len(metric_list), 1000):
            client.log_batch(run_id, metrics=metric_list[start : start + 1000])
        for name in MODEL_FILES:
            if (folder / name).is_file():
                client.log_artifact(run_id, str(folder / name), artifact_path=ARTIFACT_PATH)
        version = _register(client, reg, run_id, f"{run.info.artifact_uri}/{ARTIFACT_PATH}")
        if description:
            client.update_model_version(MODEL_NAME, version, description=description)
        client.set_tag(run_id, "registered_version", version)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    log.info("logged run %s as %s version %s in %s", run_id, MODEL_NAME, version, reg.describe())
    return run_id


def _register(client, reg: Registry, run_id: str, source: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(MODEL_NAME)
    except MlflowException as error:
        if not is_missing(error):
            raise
        with contextlib.suppress(MlflowException):  # created concurrently
            client.create_registered_model(MODEL_NAME, description="2D spine detector (RT-DETR, safetensors)")
    version = client.create_model_version(MODEL_NAME, source=source, run_id=run_id)
    return str(version.version)


def model_version_for_run(run_id: str, data_root: str | os.PathLike = "data") -> str:
    """The ``spine-detector`` version registered by a run of :func:`log_training_run`.

    Raises
    ------
    RegistryError
        When the run registered no version.
    """
    reg = open_registry(data_root)
    client = mlflow_client(reg)
    versions = client.search_model_versions(f"name='{MODEL_NAME}' and run_id='{run_id}'")
    if not versions:
        raise RegistryError(f"run {run_id} registered no version of '{MODEL_NAME}' in {reg.describe()}")
    return str(max(int(v.version) for v in versions))


MLFLOW_UI = "http://127.0.0.1:5000"
"""Where `make mlflow-ui` serves the MLflow UI (override with `SYNAPFLOW_MLFLOW_UI`)."""


def ui_links(data_root: str | os.PathLike, info: ChampionInfo) -> dict[str, str]:
    """MLflow UI addresses of a registered version's training run and of the version itself."""
    base = (Environment.read().mlflow_ui or MLFLOW_UI).rstrip("/")
    experiment = mlflow_client(open_registry(data_root)).get_run(info.run_id).info.experiment_id
    return {
        "mlflow_run": f"{base}/#/experiments/{experiment}/runs/{info.run_id}",
        "mlflow_model_version": f"{base}/#/models/{info.name}/versions/{info.version}",
    }
