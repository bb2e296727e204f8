"""The domain's exceptions. ``api/errors.py`` maps each to one HTTP status; the CLI prints
the message. Messages are written for the person who must fix the input: they name the
field and say what would be accepted.
"""

from __future__ import annotations


class CasegridError(Exception):
    """Base class. ``code`` is a stable machine-readable identifier."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class InvalidInput(CasegridError):
    """The caller's input is wrong (HTTP 400/422)."""

    code = "invalid_input"


class CoordinateError(InvalidInput):
    """Coordinates that are missing, not finite, out of range or evidently swapped."""

    code = "invalid_coordinates"


class FileRefused(InvalidInput):
    """An uploaded file that is not accepted: damaged, or over a limit of count or pixels
    (HTTP 422; nothing of the request is stored). ``field`` names the file."""

    code = "file_refused"


class FileTooLarge(FileRefused):
    """An uploaded file (or upload) over its size limit (HTTP 413)."""

    code = "file_too_large"


class UnsupportedFile(FileRefused):
    """An uploaded file whose content is of no accepted type (HTTP 415)."""

    code = "unsupported_file"


class NotFound(CasegridError):
    """The thing asked for does not exist, or the caller may not know it exists (HTTP 404)."""

    code = "not_found"


class Forbidden(CasegridError):
    """The caller is known but its role may not do this (HTTP 403)."""

    code = "forbidden"


class Unauthorized(CasegridError):
    """No valid token (HTTP 401)."""

    code = "unauthorized"


class Conflict(CasegridError):
    """The state changed under the caller, or the action does not fit the state (HTTP 409)."""

    code = "conflict"

    def __init__(self, message: str, *, current: dict | None = None, **kw):
        super().__init__(message, **kw)
        self.current = current


class ImportFailed(CasegridError):
    """A file could not be read or imported at all (malformed, empty, too large...)."""

    code = "import_failed"


class DatabaseUnavailable(CasegridError):
    """PostgreSQL cannot be reached right now (HTTP 503 with Retry-After)."""

    code = "database_unavailable"
