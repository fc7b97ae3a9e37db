"""The command line (:mod:`synapflow_assets.cli`): one click group, generated flags, one-line expected errors."""

import importlib
import subprocess
import sys
from pathlib import Path

import click
import pydantic
import pytest
from click.testing import CliRunner

from synapflow_assets.cli import app, main
from synapflow_assets.cli.app import COMMANDS, Command
from synapflow_assets.detection.training import TrainConfig
from synapflow_assets.errors import SynapFlowError
from synapflow_assets.tracking.depth import DepthLinkParams

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = [
    "compact",
    "demo",
    "detect",
    "export",
    "export-napari",
    "ingest",
    "report",
    "review",
    "review-ui",
    "simulate",
    "snapshot",
    "sql",
    "track-depth",
    "train-detector",
    "upgrade",
]


def options(command: str) -> dict[str, click.Option]:
    """``{parameter name: option}`` of a subcommand."""
    found = app.get_command(click.Context(app), command)
    return {param.name: param for param in found.params if isinstance(param, click.Option)}


def test_help_lists_every_subcommand():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == SUBCOMMANDS


def test_every_command_module_is_in_the_table():
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(f"synapflow_assets.cli.{module}")
    assert sorted(app.commands) == sorted(COMMANDS) == SUBCOMMANDS


def test_generated_training_flags_keep_their_names_and_the_models_defaults():
    found = options("train-detector")
    defaults = TrainConfig()
    for name in ("steps", "batch_size", "crop", "lr", "model", "max_minutes", "init", "pixel_size_um"):
        assert found[name].default == getattr(defaults, name), name
    assert found["pixel_size_um"].opts == ["--pixel-size"] and found["sim_crop"].opts == ["--sim-crop"]
    assert found["real_val"].opts == ["--no-real-val"] and found["real_val"].default is True
    assert list(found["model"].type.choices) == ["default", "tiny"]
    assert found["steps"].help.startswith("Total optimiser steps")


def test_generated_settings_flags_keep_their_names_and_reach_the_resources():
    from synapflow_assets.cli.ingest import settings_resources
    from synapflow_assets.setting_sections import AlignmentOptions, DetectionOptions

    found = options("ingest")
    assert found["pixel_size_um"].opts == ["--pixel-size"] and found["score_threshold"].opts == ["--score"]
    assert found["estimate_pixel_size"].opts == ["--no-pixel-size-estimate"]
    assert found["max_rotation_deg"].help.startswith(AlignmentOptions.model_fields["max_rotation_deg"].description)
    assert f"default {DetectionOptions().score_threshold}" in found["score_threshold"].help
    own = ("data", "source", "create", "wait", "drop_removed")  # the command's own options, not settings
    assert all(option.default is None for name, option in found.items() if name not in own)

    command = app.get_command(click.Context(app), "ingest")
    context = command.make_context(
        "ingest", ["--pixel-size", "0.1", "--no-pixel-size-estimate", "--score", "0.3", "--max-z-shift", "4"]
    )
    flags = {k: v for k, v in context.params.items() if k not in own}
    resources = settings_resources(source="imported", **flags)
    assert resources["imaging"].overrides() == {
        "imaging": {
            "pixel_size_um": 0.1,
            "estimate_pixel_size": False,
            "z_step_um": None,
            "channel": None,
            "n_channels": None,
            "min_layers": None,
            "max_layer_shift_px": None,
        }
    }
    assert resources["detection"].source == "imported" and resources["detection"].score_threshold == 0.3
    assert resources["alignment"].max_z_shift == 4 and resources["alignment"].max_rotation_deg is None


def test_generated_depth_flags_take_the_models_defaults_but_fill_no_gaps():
    found = options("track-depth")
    defaults = DepthLinkParams()
    assert found["inactive_wait"].default == defaults.inactive_wait
    assert found["max_centre_distance_px"].default == defaults.max_centre_distance_px
    assert found["max_centre_distance_px"].opts == ["--max-centre-distance"]
    assert found["fill_gaps"].default == 0


@pytest.mark.parametrize(
    "raised, status, message",
    [
        (SynapFlowError("the store is gone"), 2, "error: the store is gone\n"),
        (ValueError("a bad tile"), 2, "error: a bad tile\n"),
    ],
)
def test_an_expected_error_is_one_line_and_status_2(raised, status, message):
    @click.command(cls=Command, expected=(ValueError,))
    def failing() -> int:
        raise raised

    result = CliRunner().invoke(failing, [])
    assert (result.exit_code, result.stderr) == (status, message)
    assert "Traceback" not in result.output


def test_an_invalid_option_names_it_and_an_unexpected_error_keeps_its_traceback():
    class Options(pydantic.BaseModel):
        size: pydantic.PositiveInt

    @click.command(cls=Command)
    @click.option("--size", type=int)
    def sized(*, size: int) -> int:
        Options(size=size)
        return 0

    result = CliRunner().invoke(sized, ["--size", "-1"])
    assert result.exit_code == 2 and result.stderr.startswith("error: invalid option: size: ")
    assert result.stderr.count("\n") == 1

    @click.command(cls=Command)
    def broken() -> int:
        raise KeyError("bug")

    assert isinstance(CliRunner().invoke(broken, []).exception, KeyError)


def test_sql_on_a_missing_store_from_the_environment_exits_2_in_one_line(tmp_path):
    env = {"SYNAPFLOW_DATA": str(tmp_path / "lab"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "synapflow_assets", "sql", "SELECT 1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {tmp_path / 'lab' / 'features.duckdb'}: ") and done.stderr.count("\n") == 1


def test_main_returns_the_status_of_usage_errors_and_commands(capsys):
    assert main(["--help"]) == 0
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err
    assert main(["sql"]) == 2 and capsys.readouterr().err == "error: give a query or --file\n"
