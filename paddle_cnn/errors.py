"""The project's own error types. Entry points print these as one line (exit status 2); anything else
is a bug and keeps its traceback."""


class UserError(ValueError):
    """A problem with the user's input (a file, a flag, a run folder); the message says which and why."""


class ConfigError(UserError):
    """A configuration value that is not allowed; the message names the key and what is expected."""
