"""Stop on request: SIGTERM or SIGINT ends a long command (``ingest``, ``demo``) within seconds.

Dagster replaces the process's signal handlers while a run executes: a signal then fails the running step
(DuckDB rolls back its transaction) and the command would carry on with the next partition. So
:func:`stop_on_signals` installs a handler that raises ``KeyboardInterrupt`` (between runs) and also listens
on the interpreter's signal wake-up file, which sees every signal whichever handler is installed; a signal
sets :func:`stop_requested`, and the loop over partitions stops at its next check (:func:`check_stop`).
Writes are atomic, so what was interrupted is simply not there; the next ``ingest`` finishes it.
"""

from __future__ import annotations

import signal
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import SynapFlowError

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requested: dict[str, signal.Signals | None] = {"signal": None}


class Stopped(SynapFlowError, RuntimeError):
    """The command stopped on a signal; exit status 128 + the signal's number, as a shell reports it."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        _quiet_cut_short_coroutines()  # again: a ``catch_warnings`` block the signal interrupted drops filters
        self.exit_code = 128 + int(signum)
        self.signum = signum


def stop_requested() -> signal.Signals | None:
    """The signal that asked this process to stop, or None."""
    return _requested["signal"]


def check_stop(done: str = "") -> None:
    """Raise :class:`Stopped` when a stop was requested (``done``: what was finished, for the message)."""
    if (signum := stop_requested()) is not None:
        raise Stopped(
            signum,
            f"stopped by {signum.name}{f' ({done})' if done else ''}; nothing half-written is kept: run the same "
            "command again to finish",
        )


def _quiet_cut_short_coroutines() -> None:
    """A library call cut short by the signal (zarr's async reads) leaves a coroutine that warns at exit."""
    warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)


def _request(signum: int) -> None:
    if _requested["signal"] is None:
        _requested["signal"] = signal.Signals(signum)
    _quiet_cut_short_coroutines()


def _interrupt(signum: int, frame: object) -> None:
    _request(signum)
    raise KeyboardInterrupt


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT request a stop: see the module's description.

    A ``KeyboardInterrupt`` that reaches the block's end becomes :class:`Stopped`. Only in the main thread
    (elsewhere signals are the caller's business).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested["signal"] = None
    handlers = {signum: signal.signal(signum, _interrupt) for signum in SIGNALS}
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while data := reader.recv(64):
            for signum in data:
                if signum in SIGNALS:
                    _request(signum)

    watcher = threading.Thread(target=watch, name="synapflow-stop", daemon=True)
    watcher.start()
    try:
        yield
        check_stop()
    except KeyboardInterrupt:
        check_stop()
        raise Stopped(signal.SIGINT, "stopped by SIGINT; run the same command again to finish") from None
    finally:
        signal.set_wakeup_fd(previous_fd)
        writer.close()  # the watcher's recv returns b""
        watcher.join()
        reader.close()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
