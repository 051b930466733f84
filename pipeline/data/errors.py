"""The data error: one line that says what to do."""

from pipeline.errors import InputError


class DataError(InputError):
    """A dataset could not be found, fetched or read; the message says what to do."""
