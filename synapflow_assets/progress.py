"""Progress of the long commands: a tqdm bar on a terminal, plain lines otherwise (never a bar in a log file),
with a heartbeat line at least every 30 s in a log while a step runs."""

import sys
import threading
import time

from tqdm import tqdm

HEARTBEAT_SECONDS = 30.0
"""Longest silence in a log (stderr not a terminal): a step running longer prints a line this often."""


class Progress:
    """Items done of a total, with the current step; ``line`` prints a message above the bar.

    Parameters
    ----------
    total : int
        Number of items (partitions, layers, training steps).
    description : str
        What is counted, shown left of the bar.
    unit : str
        Unit of an item.
    heartbeat_s : float
        Without a terminal, the longest time without a line: after that much
        silence a line says what is running, how far the count is and for how
        long (``partitions: 2/8, running m1/day04 for 1 min 30 s``).
    """

    def __init__(
        self, total: int, description: str, *, unit: str = "item", heartbeat_s: float = HEARTBEAT_SECONDS
    ) -> None:
        self.bar = tqdm(
            total=total,
            desc=description,
            unit=unit,
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
            leave=False,
        )
        self.description, self.done, self.current = description, 0, ""
        self._lock = threading.Lock()
        self._started = self._said = time.monotonic()
        self._closed = threading.Event()
        self._heartbeat = None
        if self.bar.disable:
            self._heartbeat = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True)
            self._heartbeat.start()

    def step(self, done: int, current: str) -> None:
        """Set the count of items done and show the current step."""
        with self._lock:
            if current != self.current:
                self._started = time.monotonic()
            self.done, self.current = done, current
        self.bar.n = done
        self.bar.set_postfix_str(current[:60], refresh=True)

    def line(self, text: str) -> None:
        """Print ``text`` on stdout without breaking the bar."""
        if self.bar.disable:
            with self._lock:
                print(text, flush=True)
                self._said = time.monotonic()
        else:
            self.bar.write(text, file=sys.stdout)

    def heartbeat_line(self) -> str:
        """What is running and for how long, in one line."""
        total = f"/{self.bar.total}" if self.bar.total else ""
        seconds = int(time.monotonic() - self._started)
        running = f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
        doing = f", running {self.current} for {running}" if self.current else f", {running}"
        return f"{self.description}: {self.done}{total}{doing}"

    def _beat(self, every: float) -> None:
        while not self._closed.wait(timeout=max(0.01, every / 10)):
            with self._lock:
                if time.monotonic() - self._said >= every:
                    print(f"  {self.heartbeat_line()}", flush=True)
                    self._said = time.monotonic()

    def close(self) -> None:
        self._closed.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
