"""Exceptions with messages that name the file, key or value at fault."""


class TvdimError(Exception):
    """Base class: the CLI prints these as one clear line and exits with status 2."""


class ConfigError(TvdimError, ValueError):
    """Unknown or invalid configuration key / value."""


class DataError(TvdimError, ValueError):
    """Unusable input data: empty dataset, missing key, too many bad samples."""


class CheckpointError(TvdimError, RuntimeError):
    """A checkpoint that cannot be read or does not match the model."""


class NonFiniteLossError(TvdimError, FloatingPointError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
