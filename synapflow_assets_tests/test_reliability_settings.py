"""Reliability, settings: every hostile `synapflow.yaml` or settings flag is one line naming the file (or flag),
the option and the allowed range, and fails only the animals it applies to."""

import time

import pytest

from synapflow_assets.__main__ import main
from synapflow_assets.defs.instance import open_instance
from synapflow_assets.defs.resources import DataLake
from synapflow_assets.imaging.errors import InputError
from synapflow_assets.pipeline import process_landed
from synapflow_assets.settings import SETTINGS_FILE, load_settings

from .test_reliability import IMPORTED, _moved_animal, land

HOSTILE = {
    "pixel size inf": (b"imaging:\n  pixel_size_um: .inf\n", "a finite number from 0.005 to 5"),
    "pixel size 1e-300": (b"imaging:\n  pixel_size_um: 1e-300\n", "from 0.005 to 5"),
    "pixel size true": (b"imaging:\n  pixel_size_um: true\n", "valid number"),
    "pixel size nan": (b"imaging:\n  pixel_size_um: .nan\n", "finite number"),
    "pixel size string": (b"imaging:\n  pixel_size_um: '0.1'\n", "valid number"),
    "pixel size 10": (b"imaging:\n  pixel_size_um: 10\n", "from 0.005 to 5"),
    "z step inf": (b"imaging:\n  z_step_um: .inf\n", "from 0.05 to 50"),
    "z step 0": (b"imaging:\n  z_step_um: 0\n", "from 0.05 to 50"),
    "rotation inf": (b"alignment:\n  max_rotation_deg: .inf\n", "from 0 to 45"),
    "rotation 90": (b"alignment:\n  max_rotation_deg: 90\n", "from 0 to 45"),
    "min layers 2.5": (b"imaging:\n  min_layers: 2.5\n", "whole number"),
    "min layers true": (b"imaging:\n  min_layers: true\n", "whole number"),
    "channel -1": (b"imaging:\n  channel: -1\n", "whole number from 0 to 63"),
    "estimate 1": (b"imaging:\n  estimate_pixel_size: 1\n", "true or false"),
    "score 7.5": (b"detection:\n  score_threshold: 7.5\n", "greater than 0, at most 1"),
    "tile 1e9": (b"detection:\n  tile: 1000000000\n", "from 32 to 8192"),
    "z shift 1e6": (b"alignment:\n  max_z_shift: 1000000\n", "from 0 to 200"),
    "ring inf": (b"evidence:\n  ring_px: .inf\n", "finite number"),
    "density reversed": (b"plausibility:\n  density_per_um: [3, 0.2]\n", "low <= high"),
    "density nan": (b"plausibility:\n  density_per_um: [0.2, .nan]\n", "finite numbers"),
    "not utf-8": (b"imaging:\n  pixel_size_um: 0.1 \xff\xfe\n", "not UTF-8 text (byte 0xff at offset 30)"),
    "nested 100000 deep": (b"[" * 100000 + b"]" * 100000, "over 64 KiB"),
    "nested 20000 deep": (b"[" * 20000 + b"]" * 20000, "cannot read the settings file"),
    "nested mappings": (b"imaging: " + b"{a: " * 900 + b"1" + b"}" * 900, "imaging"),
    "python tag": (b"imaging: !!python/object/apply:os.system ['true']\n", "cannot read the settings file"),
    "a list": (b"- imaging\n", "must be a mapping"),
    "unknown section": (b"imagign:\n  pixel_size_um: 0.1\n", "imagign"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_reliability_hostile_settings_file_is_one_line(tmp_path, case):
    content, phrase = HOSTILE[case]
    (tmp_path / SETTINGS_FILE).write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(InputError) as error:
        load_settings(tmp_path)
    seconds = time.perf_counter() - start
    message = str(error.value)
    print(f"\n{case} | {message} ({seconds * 1000:.0f} ms)")
    assert message.startswith(str(tmp_path / SETTINGS_FILE)) and "\n" not in message
    assert phrase in message, message
    assert seconds < 1


@pytest.mark.parametrize(
    ("flag", "value", "phrase"),
    [
        ("--pixel-size", "inf", "--pixel-size (imaging.pixel_size_um)"),
        ("--pixel-size", "1e-300", "from 0.005 to 5"),
        ("--z-step", "nan", "--z-step (imaging.z_step_um)"),
        ("--max-rotation", "90", "from 0 to 45"),
    ],
)
def test_reliability_hostile_settings_flag_is_one_line(tmp_path, capsys, flag, value, phrase):
    (tmp_path / "landing").mkdir()
    assert main(["ingest", "--data", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and phrase in err[0], err
    assert not (tmp_path / "dagster").exists()  # refused before anything ran


def test_reliability_bad_settings_fail_only_their_animal(tmp_path):
    root = tmp_path / "data"
    land(root, "good", sessions=1)
    bad = {
        "not-utf8": HOSTILE["not utf-8"][0],
        "deep": HOSTILE["nested 100000 deep"][0],
        "inf-pixel": HOSTILE["pixel size inf"][0],
    }
    for animal, content in bad.items():
        (_moved_animal(root, animal) / SETTINGS_FILE).write_bytes(content)
    start = time.perf_counter()
    with open_instance(root) as instance:
        report = process_landed(instance, DataLake(root=str(root)), detection=IMPORTED)
    print(
        f"\n3 bad settings files, 1 good animal | {time.perf_counter() - start:.1f} s; failed {sorted(report.failed)}"
    )
    assert [m.split(" ")[0] for m in report.materialized] == ["good/day00", "good"]
    for animal in bad:
        message = report.failed[f"{animal}/day00"]
        assert message.startswith(str(root / "landing" / animal / SETTINGS_FILE)) and "\n" not in message, message
    assert sorted(report.failed) == sorted([*(f"{a}/day00" for a in bad), *bad])
