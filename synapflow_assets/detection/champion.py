"""The alias ``champion`` of ``spine-detector``: the validation gate that moves it, the shipped
detector registered on an empty registry, and loading the champion (plain Python, no dagster).

Run logging and the registry set-up are in :mod:`.registry`; the gate metric in :mod:`.gate`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..store.atomic_files import sibling
from .gate import SOURCE_TAG, GateDecision, folder_metrics, gate_rule
from .registry import (
    ALIAS,
    ARTIFACT_PATH,
    MODEL_NAME,
    REQUIRED_FILES,
    SHIPPED_FOLDER,
    ChampionInfo,
    Registry,
    RegistryError,
    check_model_folder,
    check_weights,
    is_missing,
    log_training_run,
    mlflow_client,
    model_version_for_run,
    open_registry,
)

log = logging.getLogger(__name__)


def _get_version(client, reg: Registry, version):
    from mlflow.exceptions import MlflowException

    _require_model(client, reg)
    try:
        return client.get_model_version(MODEL_NAME, str(version))
    except MlflowException as error:
        raise RegistryError(f"registered model '{MODEL_NAME}' has no version {version} in {reg.describe()}") from error


def _require_model(client, reg: Registry):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(MODEL_NAME)
    except MlflowException as error:
        if is_missing(error):
            raise RegistryError(
                f"no registered model '{MODEL_NAME}' in {reg.describe()}; run ensure_champion() or train a detector"
            ) from error
        raise


def _champion_version(client, reg: Registry):
    """The champion's ModelVersion, or None if the alias is not set (the model must exist)."""
    from mlflow.exceptions import MlflowException

    model = _require_model(client, reg)
    if ALIAS not in (getattr(model, "aliases", None) or {}):
        return None
    try:
        return client.get_model_version_by_alias(MODEL_NAME, ALIAS)
    except MlflowException as error:
        if is_missing(error):
            return None
        raise


def _run_score(client, run_id: str, key: str) -> float | None:
    value = client.get_run(run_id).data.metrics.get(key)
    return None if value is None or not math.isfinite(value) else float(value)


def promote_if_better(version, score_key: str = "val_ap50", data_root: str | os.PathLike = "data") -> GateDecision:
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
    GateDecision
        The decision. The same is logged on the new version's run: tags ``gate.decision``,
        ``gate.previous_champion``, ``gate.reason``, ``gate.score_key`` and
        metrics ``gate.new_score``, ``gate.champion_score``; and as tags of
        the model version.

    Raises
    ------
    RegistryError
        No registered model, unknown version, or the version's run lacks ``score_key``.
    """
    reg = open_registry(data_root)
    client = mlflow_client(reg)
    candidate = _get_version(client, reg, version)
    version = str(candidate.version)
    new_score = _run_score(client, candidate.run_id, score_key)
    if new_score is None:
        raise RegistryError(
            f"version {version} of '{MODEL_NAME}' (run {candidate.run_id}) has no metric "
            f"'{score_key}' in {reg.describe()}; cannot gate it"
        )
    current = _champion_version(client, reg)
    previous = None if current is None else str(current.version)
    champion_score = new_source = champion_source = None
    if previous == version:
        champion_score = new_score
    elif current is not None:
        champion_score = _run_score(client, current.run_id, score_key)
        new_source, champion_source = (
            client.get_run(run_id).data.tags.get(SOURCE_TAG) for run_id in (candidate.run_id, current.run_id)
        )
    scores: dict[str, Any] = {
        "score_key": score_key,
        "new_score": new_score,
        "champion_score": champion_score,
        "new_source": new_source,
        "champion_source": champion_source,
    }
    promoted, reason = gate_rule(version=version, champion=previous, **scores)
    if promoted:
        client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
    result = GateDecision(
        promoted=promoted,
        version=version,
        previous_champion=previous,
        champion=version if promoted else previous,
        reason=reason,
        **scores,
    )
    _record(client, candidate.run_id, result)
    return result


def _record(client, run_id: str, result: GateDecision) -> None:
    """The decision as tags of the candidate's run and model version, and its scores as run metrics."""
    decision = "promoted" if result.promoted else "kept"
    tags = {
        "gate.decision": decision,
        "gate.previous_champion": str(result.previous_champion),
        "gate.reason": result.reason,
        "gate.score_key": result.score_key,
        "gate.new_source": str(result.new_source),
        "gate.champion_source": str(result.champion_source),
    }
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(MODEL_NAME, result.version, key, value)
    client.log_metric(run_id, "gate.new_score", result.new_score)
    if result.champion_score is not None:
        client.log_metric(run_id, "gate.champion_score", result.champion_score)
    log.info("gate for %s version %s: %s (%s)", MODEL_NAME, result.version, decision, result.reason)


def _lock(reg: Registry) -> FileLock:
    """Serialise ensure_champion across processes on this machine (a file lock)."""
    path = reg.data_root / "mlflow" / ".ensure_champion.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


def _info(client, reg: Registry, mv) -> ChampionInfo:
    return ChampionInfo(MODEL_NAME, str(mv.version), mv.run_id, _local_folder(client, reg, mv))


CONFIG_ENTRIES = ("training_config", "command", "source")
"""Entries of a model folder's `metrics.json` that describe how it was made: logged as run parameters, not metrics."""


def shipped_params(metrics: dict) -> dict[str, str]:
    """The training configuration and command of a model folder's `metrics.json` as MLflow parameters."""
    config = metrics.get("training_config") or {}
    params = {f"train.{k}": json.dumps(v) if isinstance(v, (dict, list)) else str(v) for k, v in config.items()}
    if metrics.get("command"):
        params["command"] = str(metrics["command"])[:6000]
    if metrics.get("source") is not None:
        params["data"] = str(metrics["source"])[:6000]
    return params


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
    reg = open_registry(data_root)
    client = mlflow_client(reg)
    with _lock(reg):
        try:
            current = _champion_version(client, reg)
        except RegistryError:
            current = None
        if current is not None:
            return _info(client, reg, current)
        shipped = Path(shipped_folder)
        check_model_folder(shipped)
        try:
            metrics, history, tags = folder_metrics(shipped)
        except ValueError as error:
            raise RegistryError(str(error)) from error
        params = {"source": "shipped", "folder": str(shipped), **shipped_params(metrics)}
        metrics = {k: v for k, v in metrics.items() if k not in CONFIG_ENTRIES}
        run_id = log_training_run(
            shipped,
            params=params,
            metrics=metrics,
            history=history,
            data_root=reg.data_root,
            run_name="shipped",
            tags=tags,
        )
        version = model_version_for_run(run_id, reg.data_root)
        client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
        client.set_tag(run_id, "gate.decision", "shipped: registry had no champion")
        log.info("registered the shipped detector as %s version %s (%s)", MODEL_NAME, version, ALIAS)
        return _info(client, reg, client.get_model_version(MODEL_NAME, version))


def _local_folder(client, reg: Registry, mv) -> Path:
    """Local folder of a version's artifacts: resolved for file URIs, downloaded otherwise."""
    source = mv.source
    if source.startswith("file:"):
        parsed = urllib.parse.urlparse(source)
        return Path(urllib.request.url2pathname(parsed.path))
    if source.startswith("/"):
        return Path(source)
    import mlflow.artifacts

    target = reg.data_root / "mlflow" / "downloads" / f"{MODEL_NAME}-v{mv.version}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):  # workers of one machine share the download
        if not target.is_dir():
            partial = sibling(target)
            uri = f"models:/{MODEL_NAME}/{mv.version}" if source.startswith("models:") else source
            try:
                mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(partial), tracking_uri=reg.uri)
                os.replace(partial, target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    nested = target / ARTIFACT_PATH
    return nested if nested.is_dir() and not (target / REQUIRED_FILES[0]).exists() else target


def champion_info(data_root: str | os.PathLike = "data") -> ChampionInfo:
    """The current champion without loading it.

    Raises
    ------
    RegistryError
        No registered model ``spine-detector`` or no alias ``champion``.
    """
    reg = open_registry(data_root)
    client = mlflow_client(reg)
    current = _champion_version(client, reg)
    if current is None:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))
        raise RegistryError(
            f"registered model '{MODEL_NAME}' has no alias '{ALIAS}' in {reg.describe()} "
            f"(versions: {versions or 'none'}); run ensure_champion() or promote_if_better()"
        )
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

    reg = open_registry(data_root)
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
        check_weights(path)
    except RegistryError as error:
        raise RegistryError(f"{where}: {error}") from error
