"""The split of the suite into the default run and ``make test-slow`` names real modules."""

from pathlib import Path

from .conftest import SLOW_MODULES


def test_every_slow_module_exists():
    here = Path(__file__).parent
    assert sorted(name for name in SLOW_MODULES if not (here / f"{name}.py").is_file()) == []


def test_this_module_is_in_the_default_run(request):
    assert request.node.get_closest_marker("slow") is None
    assert "test_suite_split" not in SLOW_MODULES
