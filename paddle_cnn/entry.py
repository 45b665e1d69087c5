"""What every entry point (``paddle-cnn``, ``python -m experiments.*``) does around its ``main``."""
from __future__ import annotations

import sys
from typing import Callable, List, Optional

from .errors import UserError


def run_command(main: Callable[[Optional[List[str]]], object], argv: Optional[List[str]] = None,
                prog: str = "paddle-cnn") -> int:
    """Run ``main(argv)``; a user error becomes one line on stderr and exit status 2."""
    try:
        result = main(argv)
    except (UserError, FloatingPointError) as exc:  # ours, and a diverged loss (named step, checkpoint kept)
        message = str(exc).strip().splitlines()
        print(f"{prog}: error: {message[0] if message else type(exc).__name__}", file=sys.stderr)
        for extra in message[1:]:  # e.g. the list of missing data files and where to put them
            print(f"  {extra.strip()}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
