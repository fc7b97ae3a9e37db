"""The one table of session readers (``imaging/readers.py``): every suffix in it reads a small file it is registered
for, every question about a session input's suffix is answered by it, and no other module decides by suffix."""

import ast
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import synapflow_assets
from synapflow_assets.detection.imported import detections_file
from synapflow_assets.imaging.errors import InputError
from synapflow_assets.imaging.landing import session_key_of
from synapflow_assets.imaging.readers import (
    FOLDER_READER,
    READERS,
    PngReader,
    TiffReader,
    read_volume,
    reader_for,
    session_name,
    sidecar_path,
)

VOLUME = np.random.default_rng(5).integers(1, 4000, size=(3, 24, 20)).astype(np.uint16)
PLANE = VOLUME[:1]


def write_tiff(path: Path) -> np.ndarray:
    tifffile.imwrite(path, VOLUME, photometric="minisblack", metadata={"axes": "ZYX"})
    return VOLUME


def write_png(path: Path) -> np.ndarray:
    Image.fromarray(PLANE[0]).save(path)
    return PLANE


WRITERS = {TiffReader: write_tiff, PngReader: write_png}
"""How the test writes a file for each kind of reader in the table: a new reader needs one here."""


@pytest.mark.parametrize("suffix", sorted(READERS))
def test_every_reader_in_the_table_reads_a_file_of_its_suffix(tmp_path, suffix):
    reader = READERS[suffix]
    assert type(reader) in WRITERS, f"no writer in this test for the reader of {suffix}"
    for name in (f"day00{suffix}", f"DAY01{suffix.upper()}"):
        path = tmp_path / name
        expected = WRITERS[type(reader)](path)
        assert reader_for(path) is reader
        volume = read_volume(path, pixel_size_um=0.1, z_step_um=1.0)
        np.testing.assert_array_equal(volume.data, expected)


def test_a_folder_is_read_by_the_folder_reader(tmp_path):
    folder = tmp_path / "day00"
    folder.mkdir()
    for index, layer in enumerate(VOLUME):
        Image.fromarray(layer).save(folder / f"day00_layer{index}.png")
    assert reader_for(folder) is FOLDER_READER
    assert FOLDER_READER.files(folder) == sorted(folder.glob("*.png"))
    volume = read_volume(folder, pixel_size_um=0.1, z_step_um=1.0)
    np.testing.assert_array_equal(volume.data, VOLUME)
    assert volume.metadata["format"] == "png-layers"


@pytest.mark.parametrize("name", ["day00.jpg", "day00", "notes.txt", ".tif"])
def test_a_file_no_reader_takes_gives_the_clear_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not an image")
    expected = "unsupported file type .*; expected .tif/.tiff, a single-plane .png or a folder of PNG layers"
    with pytest.raises(InputError, match=expected):
        reader_for(path)
    with pytest.raises(InputError, match=expected):
        read_volume(path)


def test_one_layer_of_a_folder_stack_is_refused_on_its_own(tmp_path):
    path = tmp_path / "day00_layer03.png"
    write_png(path)
    with pytest.raises(InputError, match=r"a single PNG layer of a folder stack .*pass the folder"):
        read_volume(path)
    assert session_key_of(path) is None


@pytest.mark.parametrize("suffix", sorted(READERS))
def test_the_session_name_sidecar_and_detections_follow_the_table(tmp_path, suffix):
    path = tmp_path / f"day00{suffix.upper()}"
    path.write_bytes(b"")  # the name decides
    assert session_name(path.name) == "day00"
    assert session_key_of(path) == "day00"
    assert sidecar_path(path) == tmp_path / "day00.json"
    assert detections_file(path) == tmp_path / "day00.detections.csv"


ALLOWED = {
    "imaging/readers.py": "the table itself",
    "detection/invivo.py": "pairs a peer's CSV with its PNG in a benchmark set (not a session input)",
}
"""Modules that may spell a suffix of the table; ``synthetic/`` writes files (it does not decide how to read one)
and an f-string builds the name of a file being written."""


def test_no_other_module_decides_by_a_suffix_of_the_table():
    package = Path(synapflow_assets.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        if where in ALLOWED or where.startswith("synthetic/"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        written = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
        found += [
            f"{where}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.lower() in READERS
            and id(node) not in written
        ]
    assert found == [], "ask imaging.readers (reader_for, session_suffix, session_name) instead"
