"""An input file's bytes: decompressed when it ends in .gz or .zst (read to the stream's end marker), and
UTF-16/32 text refused up front with the fix.

``zstandard``'s own stream reader reports a zstd stream cut at a block boundary as a clean end of data;
:class:`_ZstdFrames` treats ending inside a frame as the truncation it is.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import zstandard

from rmdata.errors import RmdataError

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class _ZstdFrames(io.RawIOBase):
    """Decompress a stream of zstd frames; ending inside a frame (before its end marker) is an EOFError.

    ``zstandard``'s own stream reader reports a stream cut at a block boundary as a clean end of data.
    """

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._out = memoryview(b"")
        self._in_frame = False
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._done:
            chunk = self._raw.read(1 << 20)
            if not chunk:
                if self._in_frame:
                    raise EOFError("the zstd stream ends inside a frame, before its end marker")
                self._done = True
            else:
                self._out = memoryview(self._decompress(chunk))
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _decompress(self, data: bytes) -> bytes:
        parts = []
        while data:
            self._in_frame = True
            parts.append(self._obj.decompress(data))
            if not self._obj.eof:
                break
            data = self._obj.unused_data  # the next frame, when several were concatenated
            self._obj = self._dctx.decompressobj()
            self._in_frame = False
        return b"".join(parts)


@contextmanager
def open_binary(path: str) -> Iterator[io.BufferedIOBase]:
    """A buffered binary stream (with ``peek``) over the file, decompressed when it ends in .gz or .zst
    (any case); a compressed stream that ends before its end marker raises EOFError when read to the end."""
    name = path.lower()
    with open(path, "rb") as raw:
        if name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield unzipped
        elif name.endswith(".zst"):
            yield io.BufferedReader(_ZstdFrames(raw), buffer_size=1 << 20)
        else:
            yield raw


def check_text_encoding(path: str, head: bytes) -> None:
    """UTF-16 (and UTF-32) text is refused up front, with the fix; its lines are not JSON to a UTF-8 reader."""
    if head.startswith(_UTF16_BOMS) or (len(head) >= 4 and head[:64].count(0) >= len(head[:64]) // 4):
        raise RmdataError(
            f"{path}: the file is UTF-16 or UTF-32 text (a byte-order mark or NUL bytes at its start); rmdata "
            "reads UTF-8: re-encode it, e.g. iconv -f UTF-16 -t UTF-8 in > out"
        )
