"""Errors raised for bad input files."""

from pathlib import Path
from typing import Self

from ..errors import SynapFlowError


class InputError(SynapFlowError, ValueError):
    """An input file cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = path if hasattr(path, "fs") else Path(path)  # a path on an object store stays one
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type[Self], tuple[str | Path, str]]:
        # crosses process boundaries (Dask workers) whole
        return type(self), (self.path, self.problem)
