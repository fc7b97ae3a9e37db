"""Stop on request, in one process: the signal becomes :class:`Stopped` with the shell's exit status, and what
the signal cut short says nothing more (the whole command under a signal: test_reliability_signals.py)."""

import signal
import subprocess
import sys

import pytest

CUT_SHORT = """
import os, signal, sys, time
from synapflow_assets.stopping import Stopped, stop_on_signals

async def open_group():
    return None

cut_short = []
try:
    with stop_on_signals():
        cut_short.append(open_group())  # what zarr's sync wrapper holds when the signal lands
        os.kill(os.getpid(), signal.{name})
        time.sleep(10)
except Stopped as stop:
    print(stop, file=sys.stderr)
    sys.exit(stop.exit_code)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_with_one_line_even_with_a_call_cut_short(signum):
    run = subprocess.run(
        [sys.executable, "-c", CUT_SHORT.replace("{name}", signum.name)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 128 + signum
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {signum.name}; nothing half-written"), run.stderr
