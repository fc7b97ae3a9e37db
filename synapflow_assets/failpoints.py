"""Named points where the reliability suite kills the process (`SYNAPFLOW_FAILPOINT=<name>`), as a power cut would.

Without the variable a failpoint does nothing. The points: `detection` (boxes
found, nothing written), `zarr_write` (volume written to its temporary
folder, not renamed), `store_transaction` (feature rows inserted, not
committed), `after_commit` (rows committed, the run not yet recorded),
`tracking` (tracks computed, not written).
"""

import os
import signal

POINTS = ("detection", "zarr_write", "store_transaction", "after_commit", "tracking")


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL when `SYNAPFLOW_FAILPOINT` names this point; with
    `SYNAPFLOW_FAILPOINT_ONCE=<file>`, only the first time (the file records that it fired)."""
    if os.environ.get("SYNAPFLOW_FAILPOINT") != name:
        return
    once = os.environ.get("SYNAPFLOW_FAILPOINT_ONCE")
    if once:
        try:
            with open(once, "x"):
                pass
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
