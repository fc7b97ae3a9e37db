"""The Dagster definitions of SynapFlow Assets (`dagster dev -w workspace.yaml`)."""

import dagster as dg

from .defs.animal_sensor import animal_sensor, update_animals_job
from .defs.detection_assets import detections_2d
from .defs.detector_assets import spine_detector
from .defs.feature_assets import spine_dynamics, spine_features
from .defs.landing_sensor import failure_summary_sensor, landing_sensor, process_sessions_job
from .defs.resources import AlignmentSettings, DetectionSettings, ImagingSettings, lake_from_environment
from .defs.spine_assets import spines_3d
from .defs.track_assets import spine_tracks
from .defs.volume_assets import raw_volume

defs = dg.Definitions(
    assets=[spine_detector, raw_volume, detections_2d, spines_3d, spine_tracks, spine_features, spine_dynamics],
    jobs=[process_sessions_job, update_animals_job],
    sensors=[
        landing_sensor,
        animal_sensor,
        failure_summary_sensor,
        dg.AutomationConditionSensorDefinition(
            "spine_automation",
            target=dg.AssetSelection.assets(spine_features),
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Evaluates the automation condition of spine_features: eager, per session (a session's 3D "
            "spines or volume changed, its features are written again).",
        ),
    ],
    resources={
        "lake": lake_from_environment(),
        "imaging": ImagingSettings(),
        "detection": DetectionSettings(),
        "alignment": AlignmentSettings(),
    },
)
