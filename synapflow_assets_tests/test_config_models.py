"""The run configs of the assets come from the parameter dataclasses: same names, defaults, descriptions."""

import dataclasses

import pytest

from synapflow_assets.defs.detector_assets import TRAINING_OPTIONS, spine_detector
from synapflow_assets.defs.spine_assets import spines_3d
from synapflow_assets.defs.track_assets import spine_tracks
from synapflow_assets.detection.train_config import TrainConfig
from synapflow_assets.tracking.depth import DepthLinkParams
from synapflow_assets.tracking.time import TimeLinkParams


def fields(asset):
    return asset.op.config_schema.as_field().config_type.fields


@pytest.mark.parametrize(
    ("asset", "section", "params"),
    [(spines_3d, "DepthOptions", DepthLinkParams), (spine_tracks, "LinkingOptions", TimeLinkParams)],
)
def test_linking_is_a_settings_section_not_run_config(asset, section, params):
    """Depth and time linking are sections `depth` and `linking` of `synapflow.yaml` (observed per session, and
    in the tracks' fingerprint), with the dataclass's defaults; their assets take no run config that staleness
    would not see."""
    import synapflow_assets.setting_sections as settings

    assert asset.op.config_schema.as_field().config_type.kind.name == "ANY"  # Dagster's: none declared
    options = getattr(settings, section)()
    assert options.params() == params()
    defaults = dataclasses.asdict(params())
    assert all(defaults[name] == value for name, value in options.model_dump().items())
    assert all(field.description for field in type(options).model_fields.values())


def test_the_detector_config_exposes_training_options_with_a_short_default_run():
    schema = fields(spine_detector)
    defaults = dataclasses.asdict(TrainConfig())
    assert set(schema) == {*TRAINING_OPTIONS, "train"}
    assert schema["steps"].default_value == 600 and defaults["steps"] == 2000
    assert schema["train"].default_value is False
    assert all(schema[name].default_value == defaults[name] for name in TRAINING_OPTIONS if name != "steps")


def test_each_settings_resource_overrides_options_of_its_section_only_with_their_types():
    """The resources' override fields (None: not set) are options of their `synapflow.yaml` section, so that
    `settings.py` stays the one place of defaults, bounds and descriptions."""
    import typing

    from synapflow_assets.defs.resources import AlignmentSettings, DetectionSettings, ImagingSettings
    from synapflow_assets.settings import LabSettings

    own = {"default_voxel_size_um", "source", "batch_size"}  # how a resource runs, not a lab setting
    for resource in (ImagingSettings, DetectionSettings, AlignmentSettings):
        section = LabSettings.model_fields[resource._section].annotation.model_fields
        overrides = {name: field for name, field in resource.model_fields.items() if name not in own}
        assert overrides and set(overrides) <= set(section), resource.__name__
        for name, field in overrides.items():
            assert field.default is None, (resource.__name__, name)
            wanted = {t for t in typing.get_args(section[name].annotation) or (section[name].annotation,)}
            assert set(typing.get_args(field.annotation)) == wanted | {type(None)}, (resource.__name__, name)
        assert set(resource().overrides()[resource._section]) == set(overrides)
