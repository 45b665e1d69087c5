"""The one error type for bad data: its message names the file (and row/column) and what was expected."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..errors import UserError


class DataError(UserError):
    """Data that cannot be used as it is: a missing, corrupt or malformed file."""

    def __init__(self, path: Union[str, Path, None], problem: str, *, line: Optional[int] = None,
                 column: Optional[str] = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.line = line
        self.column = column
        where = self.path or "<data>"
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file that is not where it was looked for."""
