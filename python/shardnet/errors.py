"""Exceptions of the shardnet package.

Every failure of a library call raises a subclass of ShardnetError carrying the library's one-line
message (which names the file, dataset, layer or rank) and its status code. The subclasses also
derive from the built-in exception that fits, so ``except ValueError`` or ``except OSError``
catch them as well.
"""

# sn_status values (src/shardnet.h)
OK, INVALID, SHAPE, IO, FORMAT, NOMEM, NUMERIC, COMM, NOTFOUND = range(9)


class ShardnetError(RuntimeError):
    """A library call failed. ``status`` is the sn_status code, ``message`` the library's text."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidArgumentError(ShardnetError, ValueError):
    """SN_ERR_INVALID: a bad argument or configuration."""


class ShapeError(ShardnetError, ValueError):
    """SN_ERR_SHAPE: shapes that do not fit together (weights and model, images and input)."""


class FileError(ShardnetError, OSError):
    """SN_ERR_IO: a file missing, unreadable or unwritable."""


class FormatError(ShardnetError, ValueError):
    """SN_ERR_FORMAT: a file readable but malformed or of the wrong layout."""


class OutOfMemoryError(ShardnetError, MemoryError):
    """SN_ERR_NOMEM: an allocation failed or a size overflowed."""


class NumericError(ShardnetError, ArithmeticError):
    """SN_ERR_NUMERIC: NaN or infinity where a finite value was required."""


class CommError(ShardnetError):
    """SN_ERR_COMM: communication failed, or another rank failed."""


class NotFoundError(ShardnetError, LookupError):
    """SN_ERR_NOTFOUND: a named key, dataset or layer does not exist."""


class JobError(ShardnetError):
    """A shardnet program run (shardnet.jobs) exited with a non-zero status.

    ``returncode`` is its exit status (docs/cli.md: 2 usage, 3 input, 4 numeric, 5 communication),
    ``command`` the command line, ``stderr`` its error output; the message is its error line.
    """

    def __init__(self, message, returncode, command, stderr):
        super().__init__(message, None)
        self.returncode = returncode
        self.command = command
        self.stderr = stderr


_BY_STATUS = {
    INVALID: InvalidArgumentError,
    SHAPE: ShapeError,
    IO: FileError,
    FORMAT: FormatError,
    NOMEM: OutOfMemoryError,
    NUMERIC: NumericError,
    COMM: CommError,
    NOTFOUND: NotFoundError,
}


def error_for(status, message):
    """The exception for a failed call's status and message."""
    return _BY_STATUS.get(status, ShardnetError)(message, status)
