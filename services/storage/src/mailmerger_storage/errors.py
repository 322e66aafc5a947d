"""What the storage service reports when it cannot do what was asked: plain exceptions, no HTTP.

The kit's kinds (``mailmerger_shared.errors``) say what happened; the subclasses here name the
storage service's own cases. ``UnsupportedMediaType`` is the one kind the kit lacks: ``api/errors``
answers it at the edge, as the web kit answers the others.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mailmerger_shared.errors import DomainError, Invalid, Malformed, TooLarge


class TitledError(DomainError):
    """A domain error whose class names its title (``default_title``) unless one is given."""

    default_title: ClassVar[str | None] = None

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail, extra=extra, retry_after=retry_after, title=title or self.default_title)


class UnsupportedMediaType(TitledError):
    """The body, or the file in it, is of a type this service does not take."""

    default_title = "Unsupported media type"


# --- the body is not a form -------------------------------------------------------------------


class MalformedForm(TitledError, Malformed):
    """The body claims to be multipart/form-data but cannot be read as such."""

    default_title = "Malformed form"


class NotAForm(UnsupportedMediaType):
    """The body is not multipart/form-data at all."""


# --- why an upload is refused -----------------------------------------------------------------


class UploadRejected(TitledError):
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
