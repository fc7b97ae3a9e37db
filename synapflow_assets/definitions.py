"""The Dagster definitions of SynapFlow Assets (``dagster dev -w workspace.yaml``)."""
import os

import dagster as dg

from .defs.landing_sensor import failure_summary_sensor, process_sessions_job, landing_sensor
from .defs.detector_assets import spine_detector
from .defs.resources import AlignmentSettings, DataLake, DetectionSettings, ImagingSettings
from .defs.detection_assets import detections_2d
from .defs.feature_assets import spine_dynamics, spine_features
from .defs.spine_assets import spines_3d
from .defs.track_assets import spine_tracks
from .defs.volume_assets import raw_volume

defs = dg.Definitions(
    assets=[spine_detector, raw_volume, detections_2d, spines_3d, spine_tracks, spine_features, spine_dynamics],
    jobs=[process_sessions_job],
    sensors=[
        landing_sensor,
        failure_summary_sensor,
        dg.AutomationConditionSensorDefinition(
            "spine_automation", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
            description="Evaluates the automation conditions: spine_features is eager (per session); spine_tracks and "
                        "spine_dynamics are eager over the sessions of their animal that exist (see eager_per_animal).",
        ),
    ],
    resources={"lake": DataLake(root=os.environ.get("SYNAPFLOW_DATA", "data")), "imaging": ImagingSettings(),
               "detection": DetectionSettings(), "alignment": AlignmentSettings()},
)
