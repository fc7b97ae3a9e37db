"""The one list of assets and the two jobs of every configuration (`catalog.build_definitions`)."""

from typing import Any

import dagster as dg

from .detection_assets import detections_2d
from .detector_assets import spine_detector
from .feature_assets import spine_dynamics, spine_features
from .landed_inputs import LANDED
from .spine_assets import spines_3d
from .track_assets import spine_tracks
from .volume_assets import raw_volume

SESSION_ASSETS = [raw_volume, detections_2d, spines_3d, spine_features]
ANIMAL_ASSETS = [spine_tracks, spine_dynamics]
ASSETS = [*LANDED, spine_detector, *SESSION_ASSETS, *ANIMAL_ASSETS]
"""Every asset of the definitions, in order: the landed inputs, the detector, per session, per animal."""

PROCESS_SESSIONS = "process_sessions"
UPDATE_ANIMALS = "update_animals"


def pipeline_jobs(
    executor: dg.ExecutorDefinition = dg.in_process_executor,
) -> tuple[Any, Any]:
    """`process_sessions` and `update_animals`, their steps run by `executor` (in this process by default;
    `distributed` passes the Dask executor)."""
    return (
        dg.define_asset_job(
            PROCESS_SESSIONS,
            selection=SESSION_ASSETS,
            description="Read, detect, link through depth and quantify one landed session (requested by "
            "landing_sensor).",
            executor_def=executor,
            tags={"synapflow/stage": "detection"},
        ),
        dg.define_asset_job(
            UPDATE_ANIMALS,
            selection=ANIMAL_ASSETS,
            description="Track one animal's spines across its sessions and write its dynamics (requested by "
            "animal_sensor).",
            executor_def=executor,
        ),
    )


process_sessions_job, update_animals_job = pipeline_jobs()
