"""The one place the Dagster definitions are built: `definitions.defs` (the web UI and the daemon), the in-process
runs of `ingest` (`pipeline.run_job`) and the Dask configuration (`distributed`) differ only in the resources and
the executor of the jobs."""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from .animal_sensor import animal_sensor
from .feature_assets import spine_features
from .graph import ASSETS, pipeline_jobs, process_sessions_job, update_animals_job
from .landing_sensor import failure_summary_sensor, landing_sensor
from .resources import AlignmentSettings, DetectionSettings, ImagingSettings, lake_from_environment
from .store_maintenance import compact_store, weekly_compaction

AUTOMATION = dg.AutomationConditionSensorDefinition(
    "spine_automation",
    target=dg.AssetSelection.assets(spine_features),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the automation condition of spine_features: eager, per session (a session's 3D "
    "spines or volume changed, its features are written again).",
)
SENSORS = [landing_sensor, animal_sensor, failure_summary_sensor, AUTOMATION]


def default_resources(**given: Any) -> dict[str, Any]:
    """The four resources, `given` ones replacing the defaults (the data lake of the environment, default
    settings)."""
    defaults: dict[str, Callable[[], Any]] = {
        "lake": lake_from_environment,
        "imaging": ImagingSettings,
        "detection": DetectionSettings,
        "alignment": AlignmentSettings,
    }
    return {name: given[name] if name in given else make() for name, make in defaults.items()}


def build_definitions(
    resources: Mapping[str, Any] | None = None, executor: dg.ExecutorDefinition | None = None
) -> dg.Definitions:
    """The assets, checks, jobs, sensors and schedule of SynapFlow with `resources` (replacing the defaults of
    :func:`default_resources`), the jobs' steps run by `executor` (default: in this process)."""
    jobs = pipeline_jobs(executor) if executor is not None else (process_sessions_job, update_animals_job)
    return dg.Definitions(
        assets=ASSETS,
        jobs=[*jobs, compact_store],
        sensors=SENSORS,
        schedules=[weekly_compaction],
        resources=default_resources(**(resources or {})),
    )
