"""The project's own error types. Entry points print these as one line (exit status 2); anything else
is a bug and keeps its traceback."""


class UserError(ValueError):
    """A problem with the user's input (a file, a flag, a run folder); the message says which and why."""


class ConfigError(UserError):
    """A configuration value that is not allowed; the message names the key and what is expected."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM, with where it stopped: the entry point prints the message as one
    line and exits with ``status`` (128 + the signal's number, as a shell reports a process killed by
    it). Still a KeyboardInterrupt, so code that stops on Ctrl-C stops on it."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the entry points' handler, so that it unwinds (locks
    released, logs flushed) exactly as Ctrl-C does."""


def interrupt_status(exc: BaseException) -> int:
    return 143 if isinstance(exc, Terminated) else 130
