"""The Dagster definitions of SynapFlow Assets (`dagster dev -w workspace.yaml`)."""

import dagster as dg

from .defs.animal_sensor import animal_sensor, update_animals_job
from .defs.detector_assets import spine_detector
from .defs.feature_assets import spine_features
from .defs.landed_inputs import LANDED
from .defs.landing_sensor import failure_summary_sensor, landing_sensor, process_sessions_job
from .defs.resources import AlignmentSettings, DetectionSettings, ImagingSettings, lake_from_environment
from .defs.staleness import ANIMAL_ASSETS, SESSION_ASSETS

defs = dg.Definitions(
    assets=[*LANDED, spine_detector, *SESSION_ASSETS, *ANIMAL_ASSETS],
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
