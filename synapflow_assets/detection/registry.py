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
moves only through :func:`promote_if_better` (a validation gate, logged with
both scores) or, on an empty registry, :func:`ensure_champion`. The gate
metric ``val_ap50`` and its validation set are defined in :mod:`.gate`;
training runs reach the registry through :mod:`.train_register`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .gate import SOURCE_TAG, folder_metrics

MODEL_NAME = "spine-detector"
ALIAS = "champion"
EXPERIMENT = "spine-detector"
ARTIFACT_PATH = "model"
MODEL_FILES = ("model.safetensors", "config.json", "metrics.json")
REQUIRED_FILES = ("model.safetensors", "config.json")
SHIPPED_FOLDER = Path(__file__).resolve().parent / "shipped"

log = logging.getLogger(__name__)


class RegistryError(RuntimeError):
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
class _Registry:
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
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(data_root).resolve() / 'mlflow' / 'mlflow.db').as_posix()}"


def _registry(data_root) -> _Registry:
    data_root = Path(data_root).resolve()
    uri = tracking_uri(data_root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return _Registry(uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI", uri),
                     artifact_root=data_root / "mlflow" / "artifacts", data_root=data_root)


def _client(reg: _Registry):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=reg.uri, registry_uri=reg.registry_uri)


def _experiment_id(client, reg: _Registry) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    reg.artifact_root.mkdir(parents=True, exist_ok=True)
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(EXPERIMENT, artifact_location=reg.artifact_root.as_uri())
    except MlflowException:  # created concurrently
        return client.get_experiment_by_name(EXPERIMENT).experiment_id


def _is_missing(error) -> bool:
    return getattr(error, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------- logging


def _flat_numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) dict as ``{"a.b": float}``; NaN and non-numbers are dropped."""
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_numbers(value, f"{name}."))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def _check_model_folder(folder: Path) -> None:
    folder = Path(folder)
    if not folder.is_dir():
        raise RegistryError(f"model folder {folder} does not exist")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise RegistryError(f"model folder {folder} lacks {name}")
    _check_weights(folder / "model.safetensors")


def _check_weights(path: Path) -> None:
    """Parse the safetensors header (cheap) so that a corrupt file is caught by name."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            keys = list(handle.keys())
    except Exception as error:  # noqa: BLE001 - safetensors raises several types
        raise RegistryError(f"corrupt weights file {path}: {error}") from error
    if not keys:
        raise RegistryError(f"corrupt weights file {path}: no tensors")


def log_training_run(model_folder, params: dict, metrics: dict, history: list[dict],
                     data_root: str | os.PathLike = "data", run_name: str | None = None,
                     tags: dict | None = None) -> str:
    """Log one training run and register its weights as a new version of ``spine-detector``.

    Parameters
    ----------
    model_folder : path-like
        Folder with ``model.safetensors`` and ``config.json`` (and optionally
        ``metrics.json``); its files are logged under the artifact path ``model``.
    params : dict
        Training parameters (values are logged as strings).
    metrics : dict
        Final metrics, logged at the last step of ``history`` (after its
        values, so they are the run's latest); nested dicts are flattened to ``a.b`` names and
        non-numeric or NaN values are skipped. The gate reads ``val_ap50`` by
        default, so log the validation score under that name.
    history : list of dict
        Learning curves: one dict per evaluation with ``step`` (else its index)
        and any numeric values (``loss``, ``val_f1`` ...), each logged as a
        metric at that step.
    data_root : path-like
        Data folder holding ``mlflow/``.
    run_name : str, optional
    tags : dict, optional
        Run tags, e.g. ``val_ap50.source`` (the validation set of the gate metric).

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
    _check_model_folder(folder)
    reg = _registry(data_root)
    client = _client(reg)
    experiment_id = _experiment_id(client, reg)
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={"model_name": MODEL_NAME, **{str(k): str(v) for k, v in (tags or {}).items()}})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        param_list = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        metric_list, last_step = [], 0
        for index, row in enumerate(history):
            step = int(row.get("step", index))
            last_step = max(last_step, step)
            metric_list += [Metric(k, v, now, step) for k, v in _flat_numbers(
                {k: v for k, v in row.items() if k != "step"}).items()]
        metric_list += [Metric(k, v, now + 1, last_step) for k, v in _flat_numbers(metrics).items()]
        for start in range(0, max(len(param_list), 1), 100):
            client.log_batch(run_id, params=param_list[start:start + 100])
        for start in range(0, len(metric_list), 1000):
            client.log_batch(run_id, metrics=metric_list[start:start + 1000])
        for name in MODEL_FILES:
            if (folder / name).is_file():
                client.log_artifact(run_id, str(folder / name), artifact_path=ARTIFACT_PATH)
        version = _register(client, reg, run_id, f"{run.info.artifact_uri}/{ARTIFACT_PATH}")
        client.set_tag(run_id, "registered_version", version)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    log.info("logged run %s as %s version %s in %s", run_id, MODEL_NAME, version, reg.describe())
    return run_id


def _register(client, reg: _Registry, run_id: str, source: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(MODEL_NAME)
    except MlflowException as error:
        if not _is_missing(error):
            raise
        try:
            client.create_registered_model(MODEL_NAME, description="2D spine detector (RT-DETR, safetensors)")
        except MlflowException:  # created concurrently
            pass
    version = client.create_model_version(MODEL_NAME, source=source, run_id=run_id)
    return str(version.version)


def model_version_for_run(run_id: str, data_root: str | os.PathLike = "data") -> str:
    """The ``spine-detector`` version registered by a run of :func:`log_training_run`.

    Raises
    ------
    RegistryError
        When the run registered no version.
    """
    reg = _registry(data_root)
    client = _client(reg)
    versions = client.search_model_versions(f"name='{MODEL_NAME}' and run_id='{run_id}'")
    if not versions:
        raise RegistryError(f"run {run_id} registered no version of '{MODEL_NAME}' in {reg.describe()}")
    return str(max(int(v.version) for v in versions))


# --------------------------------------------------------------------------- champion


def _get_version(client, reg: _Registry, version):
    from mlflow.exceptions import MlflowException

    _require_model(client, reg)
    try:
        return client.get_model_version(MODEL_NAME, str(version))
    except MlflowException as error:
        raise RegistryError(f"registered model '{MODEL_NAME}' has no version {version} "
                            f"in {reg.describe()}") from error


def _require_model(client, reg: _Registry):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(MODEL_NAME)
    except MlflowException as error:
        if _is_missing(error):
            raise RegistryError(f"no registered model '{MODEL_NAME}' in {reg.describe()}; "
                                f"run ensure_champion() or train a detector") from error
        raise


def _champion_version(client, reg: _Registry):
    """The champion's ModelVersion, or None if the alias is not set (the model must exist)."""
    from mlflow.exceptions import MlflowException

    model = _require_model(client, reg)
    if ALIAS not in (getattr(model, "aliases", None) or {}):
        return None
    try:
        return client.get_model_version_by_alias(MODEL_NAME, ALIAS)
    except MlflowException as error:
        if _is_missing(error):
            return None
        raise


def _run_score(client, run_id: str, key: str) -> float | None:
    value = client.get_run(run_id).data.metrics.get(key)
    return None if value is None or not math.isfinite(value) else float(value)


def promote_if_better(version, score_key: str = "val_ap50", data_root: str | os.PathLike = "data") -> dict:
    """Move the alias ``champion`` to ``version`` only if its validation score beats the champion's.

    Parameters
    ----------
    version : str or int
        A registered version of ``spine-detector``.
    score_key : str
        Metric of the versions' runs to compare (larger is better). A tie
        keeps the current champion. Without a champion the version is
        promoted; if the champion's run lacks the metric, the version is
        promoted too (the reason says so). When both runs carry the tag
        ``val_ap50.source`` and the validation sets differ, the champion is kept.
    data_root : path-like

    Returns
    -------
    dict
        ``promoted`` (bool), ``version``, ``previous_champion`` (version or
        None), ``champion`` (version after the decision), ``score_key``,
        ``new_score``, ``champion_score`` (None if absent), ``new_source``,
        ``champion_source`` (validation sets, None if unknown), ``reason``. The
        same is logged on the new version's run: tags ``gate.decision``,
        ``gate.previous_champion``, ``gate.reason``, ``gate.score_key`` and
        metrics ``gate.new_score``, ``gate.champion_score``; and as tags of
        the model version.

    Raises
    ------
    RegistryError
        No registered model, unknown version, or the version's run lacks ``score_key``.
    """
    reg = _registry(data_root)
    client = _client(reg)
    candidate = _get_version(client, reg, version)
    version = str(candidate.version)
    new_score = _run_score(client, candidate.run_id, score_key)
    if new_score is None:
        raise RegistryError(f"version {version} of '{MODEL_NAME}' (run {candidate.run_id}) has no metric "
                            f"'{score_key}' in {reg.describe()}; cannot gate it")
    current = _champion_version(client, reg)
    champion_score = None
    if current is None:
        promoted, reason = True, f"no '{ALIAS}' alias yet"
        new_source = champion_source = None
    elif str(current.version) == version:
        champion_score, new_source, champion_source = new_score, None, None
        promoted, reason = False, f"version {version} already is '{ALIAS}'"
    else:
        champion_score = _run_score(client, current.run_id, score_key)
        new_source, champion_source = (client.get_run(run_id).data.tags.get(SOURCE_TAG)
                                       for run_id in (candidate.run_id, current.run_id))
        if champion_score is None:
            promoted, reason = True, f"'{ALIAS}' version {current.version} has no '{score_key}'"
        elif new_source and champion_source and new_source != champion_source:
            promoted, reason = False, (f"{score_key} measured on different validation sets ({new_source} vs "
                                       f"{champion_source}): the champion is kept")
        elif new_score > champion_score:
            promoted, reason = True, f"{score_key} {new_score:.4f} > {champion_score:.4f}"
        else:
            promoted, reason = False, f"{score_key} {new_score:.4f} <= {champion_score:.4f} (ties keep the champion)"
    if promoted:
        client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
    previous = None if current is None else str(current.version)
    result = {"promoted": promoted, "version": version, "previous_champion": previous,
              "champion": version if promoted else previous, "score_key": score_key,
              "new_score": new_score, "champion_score": champion_score, "new_source": new_source,
              "champion_source": champion_source, "reason": reason}
    decision = "promoted" if promoted else "kept"
    tags = {"gate.decision": decision, "gate.previous_champion": str(previous), "gate.reason": reason,
            "gate.score_key": score_key, "gate.new_source": str(new_source),
            "gate.champion_source": str(champion_source)}
    for key, value in tags.items():
        client.set_tag(candidate.run_id, key, value)
        client.set_model_version_tag(MODEL_NAME, version, key, value)
    client.log_metric(candidate.run_id, "gate.new_score", new_score)
    if champion_score is not None:
        client.log_metric(candidate.run_id, "gate.champion_score", champion_score)
    log.info("gate for %s version %s: %s (%s)", MODEL_NAME, version, decision, reason)
    return result


@contextlib.contextmanager
def _lock(reg: _Registry):
    """Serialise ensure_champion across processes on this machine (POSIX file lock)."""
    path = reg.data_root / "mlflow" / ".ensure_champion.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _info(client, reg: _Registry, mv) -> ChampionInfo:
    return ChampionInfo(MODEL_NAME, str(mv.version), mv.run_id, _local_folder(client, reg, mv))


def ensure_champion(data_root: str | os.PathLike = "data", shipped_folder=SHIPPED_FOLDER) -> ChampionInfo:
    """Make sure the alias ``champion`` exists, registering the shipped weights if it does not.

    Parameters
    ----------
    data_root : path-like
    shipped_folder : path-like
        Folder with ``model.safetensors``, ``config.json`` and ``metrics.json``
        (the package's shipped detector by default). Its ``metrics.json``
        (numeric entries, flattened) is logged as the run's metrics with the
        gate metric ``val_ap50`` (see :mod:`.gate`), and ``history.json`` as
        learning curves.

    Returns
    -------
    ChampionInfo

    Raises
    ------
    RegistryError
        When the champion is needed and the shipped folder lacks a file or
        holds corrupt weights.
    """
    reg = _registry(data_root)
    client = _client(reg)
    with _lock(reg):
        try:
            current = _champion_version(client, reg)
        except RegistryError:
            current = None
        if current is not None:
            return _info(client, reg, current)
        shipped = Path(shipped_folder)
        _check_model_folder(shipped)
        try:
            metrics, history, tags = folder_metrics(shipped)
        except ValueError as error:
            raise RegistryError(str(error)) from error
        run_id = log_training_run(shipped, params={"source": "shipped", "folder": str(shipped)},
                                  metrics=metrics, history=history, data_root=reg.data_root, run_name="shipped",
                                  tags=tags)
        version = model_version_for_run(run_id, reg.data_root)
        client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
        client.set_tag(run_id, "gate.decision", "shipped: registry had no champion")
        log.info("registered the shipped detector as %s version %s (%s)", MODEL_NAME, version, ALIAS)
        return _info(client, reg, client.get_model_version(MODEL_NAME, version))


def _local_folder(client, reg: _Registry, mv) -> Path:
    """Local folder of a version's artifacts: resolved for file URIs, downloaded otherwise."""
    source = mv.source
    if source.startswith("file:"):
        parsed = urllib.parse.urlparse(source)
        return Path(urllib.request.url2pathname(parsed.path))
    if source.startswith("/"):
        return Path(source)
    import mlflow.artifacts

    target = reg.data_root / "mlflow" / "downloads" / f"{MODEL_NAME}-v{mv.version}"
    if not all((target / name).is_file() for name in REQUIRED_FILES):
        target.mkdir(parents=True, exist_ok=True)
        uri = f"models:/{MODEL_NAME}/{mv.version}" if source.startswith("models:") else source
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target), tracking_uri=reg.uri)
        nested = target / ARTIFACT_PATH
        if nested.is_dir() and not (target / REQUIRED_FILES[0]).exists():
            return nested
    return target


def champion_info(data_root: str | os.PathLike = "data") -> ChampionInfo:
    """The current champion without loading it.

    Raises
    ------
    RegistryError
        No registered model ``spine-detector`` or no alias ``champion``.
    """
    reg = _registry(data_root)
    client = _client(reg)
    current = _champion_version(client, reg)
    if current is None:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))
        raise RegistryError(f"registered model '{MODEL_NAME}' has no alias '{ALIAS}' in {reg.describe()} "
                            f"(versions: {versions or 'none'}); run ensure_champion() or promote_if_better()")
    return _info(client, reg, current)


def load_champion(data_root: str | os.PathLike = "data"):
    """Load the champion detector.

    Parameters
    ----------
    data_root : path-like

    Returns
    -------
    (SpineDetector, ChampionInfo)

    Raises
    ------
    RegistryError
        No registered model, no alias ``champion``, or a missing / corrupt
        file of the champion's artifacts (the message names the registry,
        the version and the file).
    """
    from synapflow_assets.detection.inference import SpineDetector

    reg = _registry(data_root)
    info = champion_info(data_root)
    where = f"'{MODEL_NAME}' version {info.version} (alias '{ALIAS}', run {info.run_id}) in {reg.describe()}"
    for name in REQUIRED_FILES:
        if not (info.folder / name).is_file():
            raise RegistryError(f"{where}: artifact file {info.folder / name} is missing")
    _check_weights_for(info.folder / "model.safetensors", where)
    try:
        detector = SpineDetector.load(info.folder)
    except (ValueError, OSError, RuntimeError) as error:
        raise RegistryError(f"{where}: cannot load {info.folder}: {error}") from error
    return detector, info


def _check_weights_for(path: Path, where: str) -> None:
    try:
        _check_weights(path)
    except RegistryError as error:
        raise RegistryError(f"{where}: {error}") from error
