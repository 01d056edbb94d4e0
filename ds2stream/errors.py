"""ds2stream's errors: what a user gave it (a file, a value, a setting) that it cannot use, or a
run that cannot go on as it is.

The command line prints a :class:`Ds2streamError` as one ``Error:`` line naming the file or value;
any other exception is a bug and keeps its traceback. Every error here is a ValueError too, so
code that caught ValueError goes on catching them.
"""


class Ds2streamError(ValueError):
    """Something a user can act on; the message says what and where, and how to go on."""


class ConfigError(Ds2streamError):
    """A setting out of its range, an unknown name, or settings that do not go together."""


class DataError(Ds2streamError):
    """Inputs, shard sets, run directories or model files that cannot be used as given."""


class RunStoppedError(Ds2streamError):
    """A training run stopped by something outside its inputs (a lost node, a kernel error on one
    rank of several); the message says how to go on (``--resume``)."""
