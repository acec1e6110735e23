"""Open a policy file safely: regular files only, a size limit, text not binary, one line at a time."""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO, Iterator

from sinkdns.policy.source import PolicyFileError

SIZE_LIMIT = 200 * 1024 * 1024
BLOCK = 1024 * 1024


def open_file(path: str, file: str, limit: int = SIZE_LIMIT) -> BinaryIO:
    """Open for reading, following symlinks; PolicyFileError for loops, dangling links, non-files and
    oversize files. The checks are made on the open descriptor, so a file swapped for a FIFO between a
    check and the open cannot block the load (O_NONBLOCK keeps the open itself from waiting)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PolicyFileError(file, 0, "symlink loop") from None
        raise PolicyFileError(file, 0, f"cannot read: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise PolicyFileError(file, 0, "not a regular file")
    if st.st_size > limit:
        os.close(fd)
        raise PolicyFileError(file, 0, f"{st.st_size} bytes is over the size limit of {limit}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_lines(path: str, file: str, limit: int = SIZE_LIMIT) -> Iterator[str]:
    """The file's lines without line ends. Binary data (a NUL byte) or a read error fails the whole file,
    naming the first line that holds a NUL or ends past `limit` bytes.

    Read and decoded a block at a time and split in C: a million-line list costs no Python work per
    line here. Bytes that are not UTF-8 survive as surrogates, so only the line holding them is
    rejected later.
    """
    try:
        with open_file(path, file, limit) as f:
            lineno = 0  # lines yielded so far
            read = 0
            pending: list[bytes] = []  # the start of a line that earlier blocks ended in
            while block := f.read(BLOCK):
                over = read + len(block) > limit
                # Complete lines end at the last line end; past the limit, before the line holding byte `limit`.
                end = block.rfind(b"\n", 0, limit - read if over else len(block)) + 1
                read += len(block)
                if end:
                    lines = _decode(b"".join(pending) + block[:end] if pending else block[:end], lineno, file)
                    pending = []
                    lines.pop()  # the empty string after the last line end
                    lineno += len(lines)
                    yield from lines
                if over:
                    raise PolicyFileError(file, lineno + 1, f"over the size limit of {limit} bytes")
                pending.append(block[end:])
            last = b"".join(pending)
            if last:
                yield from _decode(last, lineno, file)
    except OSError as exc:
        raise PolicyFileError(file, 0, f"cannot read: {exc.strerror}") from None


def _decode(data: bytes, lineno: int, file: str) -> list[str]:
    """Lines `lineno + 1`... of the file, split at line ends; the last one is what follows the last end."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise PolicyFileError(file, lineno + data.count(b"\n", 0, nul) + 1, "binary data (a NUL byte)")
    text = data.decode("utf-8", "surrogateescape")
    if lineno == 0 and text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    return [line.rstrip("\r") for line in lines] if "\r" in text else lines
