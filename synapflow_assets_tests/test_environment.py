"""The environment is read in one place (`synapflow_assets.environment`), when asked, and documented whole."""

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

import synapflow_assets
from synapflow_assets.defs.resources import lake_from_environment
from synapflow_assets.environment import Environment
from synapflow_assets.imaging.landing import SETTLE_SECONDS, settle_seconds_default

PACKAGE = Path(synapflow_assets.__file__).parent
USAGE = PACKAGE.parent / "docs" / "usage.md"


def _reads_environment(tree: ast.AST) -> list[int]:
    """Lines that touch ``os.environ`` or call ``os.getenv``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            found.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [node.lineno for alias in node.names if alias.name in ("environ", "getenv")]
    return found


def test_only_the_environment_module_reads_the_environment():
    readers = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "environment.py" and path.parent == PACKAGE:
            continue
        if lines := _reads_environment(ast.parse(path.read_text(), str(path))):
            readers[str(path.relative_to(PACKAGE))] = lines
    assert not readers, readers


def test_read_takes_set_variables_and_treats_empty_ones_as_unset():
    env = Environment.read(
        {"SYNAPFLOW_DATA": "s3://lab/run", "SYNAPFLOW_STORE": "", "SYNAPFLOW_SETTLE_SECONDS": "2.5", "OTHER": "x"}
    )
    assert env.data == "s3://lab/run"
    assert env.store == "" and env.landing == ""
    assert env.settle_seconds == 2.5
    assert Environment.read({}).data == "data"
    assert Environment.read({"AWS_ENDPOINT_URL": "http://b"}).s3_endpoint_url == "http://b"
    assert Environment.read({"AWS_ENDPOINT_URL": "http://b", "AWS_ENDPOINT_URL_S3": "http://a"}).s3_endpoint_url == (
        "http://a"
    )
    assert Environment.read({"AWS_REGION": "eu-west-1"}).s3_region == "eu-west-1"
    assert Environment.read({}).cache_root == Path.home() / ".cache" / "synapflow"
    with pytest.raises(ValidationError, match="SYNAPFLOW_SETTLE_SECONDS"):
        Environment.read({"SYNAPFLOW_SETTLE_SECONDS": "soon"})


def test_the_environment_is_read_when_asked_not_at_import(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNAPFLOW_DATA", str(tmp_path / "lab"))
    monkeypatch.setenv("SYNAPFLOW_STORE", str(tmp_path / "store.duckdb"))
    monkeypatch.setenv("SYNAPFLOW_SETTLE_SECONDS", "0.5")
    lake = lake_from_environment()
    assert lake.root == str(tmp_path / "lab") and lake.store == str(tmp_path / "store.duckdb")
    assert settle_seconds_default() == 0.5
    monkeypatch.delenv("SYNAPFLOW_SETTLE_SECONDS")
    assert settle_seconds_default() == SETTLE_SECONDS


def test_every_variable_is_documented():
    text = USAGE.read_text()
    missing = [name for name in Environment.variables() if f"`{name}`" not in text]
    assert not missing, f"not in docs/usage.md: {missing}"
