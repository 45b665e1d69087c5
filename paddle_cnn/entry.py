"""What every entry point (``paddle-cnn``, ``python -m experiments.*``) does around its ``main``."""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable, List, Optional

from .errors import Interrupted, Terminated, UserError, interrupt_status
from .fileio import OUTSIDE_ERRNOS, describe_os_error


def _raise_terminated(signum, frame):
    raise Terminated()


def setup_signals():
    """SIGTERM unwinds like Ctrl-C (so locks are released and logs flushed), and Paddle's C++ handler,
    which prints a "FatalError: Termination signal" block and aborts, is switched off. Only for
    entry points: a program that imports paddle_cnn keeps its own handlers. Returns the SIGTERM
    handler it replaced (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import paddle

        paddle.disable_signal_handler()
    except ImportError:
        pass
    return signal.signal(signal.SIGTERM, _raise_terminated)


def run_command(main: Callable[[Optional[List[str]]], object], argv: Optional[List[str]] = None,
                prog: str = "paddle-cnn") -> int:
    """Run ``main(argv)``; a user error, a full or read-only disk and Ctrl-C/SIGTERM each become one
    line on stderr (exit status 2, or 130/143 for the signals). Anything else keeps its traceback."""
    previous = setup_signals()
    try:
        result = main(argv)
    except (UserError, FloatingPointError) as exc:  # ours, and a diverged loss (named step, checkpoint kept)
        message = str(exc).strip().splitlines()
        print(f"{prog}: error: {message[0] if message else type(exc).__name__}", file=sys.stderr)
        for extra in message[1:]:  # e.g. the list of missing data files and where to put them
            print(f"  {extra.strip()}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in OUTSIDE_ERRNOS:
            raise
        print(f"{prog}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
        print(f"{prog}: stopped by {name}", file=sys.stderr)
        return interrupt_status(exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return result if isinstance(result, int) else 0
