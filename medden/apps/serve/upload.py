"""Receive one uploaded file by streaming a ``multipart/form-data`` body to disk, within a limit.

The body is parsed chunk by chunk as it arrives (python-multipart's streaming parser): the
file part goes straight into one file in the request's temporary folder and the small text
fields (the bundle name) into a dict. Nothing holds the whole body in memory, and writing
stops at the first chunk that takes the file past ``max_bytes``: at most ``max_bytes`` of it
ever reach the disk. The rest of an oversized body is read and dropped (up to
:data:`DRAIN_LIMIT` bytes) before the 413 answer, so that browsers, which send the whole
body before they read the answer, see the message instead of a reset connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from medden.apps.serve.errors import UploadError

__all__ = ["DRAIN_LIMIT", "FILE_FIELD", "Upload", "format_bytes", "receive_upload"]

#: The form field that carries the file.
FILE_FIELD = "file"
#: Bytes of an oversized body read (and dropped) before answering 413; past this the
#: connection is closed with the answer unread by the client.
DRAIN_LIMIT = 1 << 30
#: Room for boundaries, part headers and the small text fields on top of the file itself.
_OVERHEAD = 64 * 1024
_MAX_FIELDS = 8
_MAX_FIELD_BYTES = 1024
_MAX_HEADER_BYTES = 4096


@dataclass
class Upload:
    """One received file.

    Attributes:
        path: the file's bytes, in the request's temporary folder.
        filename: the name the browser sent (only used to name the downloads; never logged).
        size: bytes in ``path``.
        fields: the text fields of the form, e.g. ``{"bundle": "general_denoiser", "progress": token}``.
    """

    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


def format_bytes(n: int) -> str:
    """``n`` bytes for people: ``"512 bytes"``, ``"40 KB"``, ``"100 MB"`` (powers of 1024).

    Example:
        >>> format_bytes(100 * 2**20), format_bytes(40_000), format_bytes(12)
        ('100 MB', '39.1 KB', '12 bytes')
    """
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _too_large(max_bytes: int) -> UploadError:
    return UploadError(413, f"the file is larger than this server's upload limit of {format_bytes(max_bytes)}; "
                            "upload a smaller file (e.g. one series, or a cropped image), or start the server "
                            "with a larger --max-upload-mb.")


class _Receiver:
    """python-multipart callbacks that write the one file part to ``target`` and keep text fields."""

    def __init__(self, target: Path, max_bytes: int) -> None:
        self.target, self.max_bytes = target, max_bytes
        self.filename: str | None = None
        self.size = 0
        self.fields: dict[str, str] = {}
        self._file: BinaryIO | None = None
        self._header_name = self._header_value = self._disposition = b""
        self._field_name: str | None = None
        self._field = bytearray()

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end}

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._field_name = None
        self._field = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        self._check_header()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._header_name) + len(self._header_value) > _MAX_HEADER_BYTES:
            raise UploadError(400, f"a form part header is longer than {_MAX_HEADER_BYTES} bytes; send the file "
                                   "from the page (or as multipart/form-data with a short file name).")

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.fields) >= _MAX_FIELDS:
                raise UploadError(400, f"the form has more than {_MAX_FIELDS} fields; send only 'file', "
                                       "'bundle' and 'progress'.")
            self._field_name = name
            return
        if name != FILE_FIELD or self._file is not None:
            raise UploadError(400, f"send exactly one file, in the form field {FILE_FIELD!r} (got a file in field "
                                   f"{name!r}{' after the first file' if self._file is not None else ''}).")
        self.filename = options[b"filename"].decode("utf-8", "replace")
        self._file = self.target.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._field_name is not None:
            self._field += data[start:end]
            if len(self._field) > _MAX_FIELD_BYTES:
                raise UploadError(400, f"form field {self._field_name!r} is longer than {_MAX_FIELD_BYTES} "
                                       "bytes; it should hold a short name such as a bundle name.")
            return
        if self._file is None or self._file.closed:
            return  # data of a part without a name: ignored
        self.size += end - start
        if self.size > self.max_bytes:
            raise _too_large(self.max_bytes)
        self._file.write(data[start:end])

    def on_part_end(self) -> None:
        if self._field_name is not None:
            self.fields[self._field_name] = self._field.decode("utf-8", "replace")
            self._field_name = None
        elif self._file is not None:
            self._file.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive_upload(headers: Mapping[str, str], stream: AsyncIterator[bytes], folder: Path,
                         max_bytes: int) -> Upload:
    """Stream a ``multipart/form-data`` request body into ``folder/upload`` (one file field).

    Args:
        headers: the request headers (``content-type`` with the boundary; ``content-length``
            when the client sent one).
        stream: the request body as it arrives, e.g. Starlette's ``request.stream()``.
        folder: an existing, empty folder that belongs to this request (the caller deletes it).
        max_bytes: the largest file accepted, in bytes.

    Returns:
        The received :class:`Upload`.

    Raises:
        UploadError: 400 not a multipart form, no file, more than one file, malformed body;
            413 a file (or a declared body) larger than ``max_bytes``; 422 an empty file.
    """
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type, options = parse_options_header(headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadError(400, f"send the file as multipart/form-data (a form with a {FILE_FIELD!r} field), "
                               f"not {content_type.decode('latin-1') or 'no content type'!r}.")
    chunks = aiter(stream)
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + _OVERHEAD:
        await _drain(chunks)
        raise _too_large(max_bytes)
    receiver = _Receiver(folder / "upload", max_bytes)
    parser = MultipartParser(options[b"boundary"], receiver.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except UploadError as err:
        if err.status == 413:
            await _drain(chunks)
        raise
    except FormParserError:
        raise UploadError(400, "the multipart/form-data body is malformed; send the file from the page.") from None
    finally:
        receiver.close()
    if receiver.filename is None:
        raise UploadError(400, f"the form holds no file (expected one in the field {FILE_FIELD!r}); choose a "
                               "file first.")
    if receiver.size == 0:
        raise UploadError(422, "the uploaded file is empty (0 bytes); choose the image file itself.")
    return Upload(folder / "upload", receiver.filename, receiver.size, receiver.fields)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read and drop the rest of a refused body, up to :data:`DRAIN_LIMIT` bytes."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > DRAIN_LIMIT:
            return
