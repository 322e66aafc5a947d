"""What the storage service reports when it cannot do what was asked: plain exceptions, no HTTP.

The kit's kinds (``mailmerger_shared.errors``) say what happened; the subclasses here name the
storage service's own cases; each class names its title once (``default_title``).
"""

from __future__ import annotations

from mailmerger_shared.errors import DomainError, Invalid, Malformed, TooLarge, Unsupported


class UnsupportedMediaType(Unsupported):
    """The body, or the file in it, is of a type this service does not take."""

    default_title = "Unsupported media type"


# --- the body is not a form -------------------------------------------------------------------


class MalformedForm(Malformed):
    """The body claims to be multipart/form-data but cannot be read as such."""

    default_title = "Malformed form"


class NotAForm(UnsupportedMediaType):
    """The body is not multipart/form-data at all."""


# --- why an upload is refused -----------------------------------------------------------------


class UploadRejected(DomainError):
    """The file itself was refused; the detail says what to change before trying again."""


class UnsupportedFile(UploadRejected, UnsupportedMediaType):
    default_title = "Unsupported file"


class FileTooLarge(UploadRejected, TooLarge):
    default_title = "File too large"


class QuotaExceeded(UploadRejected, TooLarge):
    default_title = "Storage quota exceeded"


class EmptyFile(UploadRejected, Invalid):
    default_title = "Empty file"


class IncompleteForm(UploadRejected, Invalid):
    default_title = "Incomplete upload form"
