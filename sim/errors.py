"""Errors raised on bad input. Each message names what was wrong and where."""


class DataError(ValueError):
    """A data file is malformed: names the file, the row or column, and what was expected."""


class ConfigError(ValueError):
    """A scenario or config value is invalid: names the file and the field path."""


class IllegalTransition(RuntimeError):
    """A scheduler state transition that the CAFTM state machine does not allow."""
