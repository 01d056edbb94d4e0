"""ds2stream's errors: what a user gave it (a file, a value, a setting) that it cannot use.

The command line prints a :class:`Ds2streamError` as one ``Error:`` line naming the file or value;
any other exception is a bug and keeps its traceback. Every error here is a ValueError too, so
code that caught ValueError goes on catching them.
"""


class Ds2streamError(ValueError):
    """Something a user gave ds2stream that it cannot use; the message says what and where."""


class ConfigError(Ds2streamError):
    """A setting out of its range, an unknown name, or settings that do not go together."""


class DataError(Ds2streamError):
    """Inputs, shard sets, run directories or model files that cannot be used as given."""
