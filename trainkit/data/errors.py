"""The one error type of the data pipeline: a message that names the problem and how to fix it."""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be used as configured: a missing folder, an empty class, a corrupt file, a wrong count."""
