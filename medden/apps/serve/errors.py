"""The one error type of the web viewer: a problem with a request, said as a sentence for the page."""

from __future__ import annotations

__all__ = ["UploadError"]


class UploadError(ValueError):
    """A request the viewer refuses, with the HTTP status to answer and a message for the user.

    The message is shown on the page as it is: it names the problem, the value received
    and what to do instead, and never quotes DICOM tag values (no patient identifiers).

    Args:
        status: 400 bad request (e.g. unknown bundle), 404 unknown job or slice, 413 too
            large, 415 wrong file type, 422 a file of the right type that cannot be decoded
            or denoised.
        message: the sentence shown to the user.

    Example:
        >>> err = UploadError(415, "a .txt file is not an image.")
        >>> err.status, str(err)
        (415, 'a .txt file is not an image.')
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
