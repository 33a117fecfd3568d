"""The one error type of the data pipeline: a message that names the problem and how to fix it."""

from __future__ import annotations

from resmlp.cli import UsageError, UserError


class DataError(UserError, ValueError):
    """Data that cannot be used as configured: a missing folder, an empty class, a corrupt file, a wrong count."""


class DataSpecError(UsageError, DataError):
    """A data spec (``--data`` or ``data.dataset``) that is not written in the data grammar; exit status 2."""
