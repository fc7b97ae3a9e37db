"""Named points where the reliability suite kills the process (`SYNAPFLOW_FAILPOINT=<name>`), as a power cut would.

Without the variable a failpoint does nothing. The points: `detection` (boxes
found, nothing written), `zarr_write` (volume written to its temporary
folder, not renamed), `store_transaction` (feature rows inserted, not
committed), `after_commit` (rows committed, the run not yet recorded),
`tracking` (tracks computed, not written).
"""

import os
import signal
import time

from .environment import Environment

POINTS = ("detection", "zarr_write", "store_transaction", "after_commit", "tracking")


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL when `SYNAPFLOW_FAILPOINT` names this point; with
    `SYNAPFLOW_FAILPOINT_ONCE=<file>`, only the first time (the file records that it fired); with
    `SYNAPFLOW_FAILPOINT_SIGNAL=TERM`, ask it to stop with SIGTERM instead (as `kill` or a timeout would)."""
    env = Environment.read()
    if env.failpoint != name:
        return
    once = env.failpoint_once
    if once:
        try:
            with open(once, "x"):
                pass
        except FileExistsError:
            return
    terminate = env.failpoint_signal == "TERM"
    os.kill(os.getpid(), signal.SIGTERM if terminate else signal.SIGKILL)
    if terminate:
        time.sleep(1)  # the handler runs here, as it would wherever a real signal arrives
