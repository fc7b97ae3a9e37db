"""Stop on request, in one process: the signal becomes :class:`Stopped` with the shell's exit status, and what
the signal cut short says nothing more (the whole command under a signal: test_reliability_signals.py)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

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


#: A command body run with ``python -m``, ending through :func:`~synapflow_assets.stopping.exit_process` as
#: ``python -m synapflow_assets`` does; ``{cut}`` is where the signal lands.
AS_MODULE = """
import os, signal, sys, time
from synapflow_assets.stopping import Stopped, exit_process, stop_on_signals

class Dropped:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(10**6))  # the handler runs here, where Python can only print and drop its exception

status = 0
try:
    with stop_on_signals():
        {cut}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sum(range(1000))
        print("not stopped", file=sys.stderr)
except Stopped as stop:
    print(stop, file=sys.stderr)
    status = stop.exit_code
exit_process(status)
"""

CUTS = {
    # CPython 3.11 marks ``python -m`` as interrupted when a KeyboardInterrupt leaves eval'd code, caught or not
    "inside eval": "eval('os.kill(os.getpid(), signal.SIGTERM) or sum(range(10**6))')",
    "inside __del__": "Dropped()",
}


@pytest.mark.parametrize("cut", CUTS)
def test_a_stopped_module_run_ends_with_the_status_of_its_signal(tmp_path, cut):
    (tmp_path / "stopped_command.py").write_text(AS_MODULE.replace("{cut}", CUTS[cut]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])])}
    run = subprocess.run([sys.executable, "-m", "stopped_command"], capture_output=True, text=True, timeout=60, env=env)
    lines = run.stderr.strip().splitlines()
    assert (run.returncode, len(lines)) == (128 + signal.SIGTERM, 1), (run.returncode, run.stderr)
    assert lines[0].startswith("stopped by SIGTERM; nothing half-written"), run.stderr
