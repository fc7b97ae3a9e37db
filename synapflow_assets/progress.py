"""Progress of the long commands: a tqdm bar on a terminal, plain lines otherwise (never a bar in a log file)."""

import sys

from tqdm import tqdm


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
    """

    def __init__(self, total: int, description: str, *, unit: str = "item") -> None:
        self.bar = tqdm(
            total=total,
            desc=description,
            unit=unit,
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
            leave=False,
        )

    def step(self, done: int, current: str) -> None:
        """Set the count of items done and show the current step."""
        self.bar.n = done
        self.bar.set_postfix_str(current[:60], refresh=True)

    def line(self, text: str) -> None:
        """Print ``text`` on stdout without breaking the bar."""
        if self.bar.disable:
            print(text, flush=True)
        else:
            self.bar.write(text, file=sys.stdout)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
