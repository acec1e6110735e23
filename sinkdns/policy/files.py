"""Open a policy file safely: regular files only, a size limit, text not binary, one line at a time."""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO, Iterator

from sinkdns.policy.source import PolicyFileError

SIZE_LIMIT = 200 * 1024 * 1024


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
    """The file's lines without line ends. Binary data (a NUL byte) or a read error fails the whole file.

    Bytes that are not UTF-8 survive as surrogates, so only the line holding them is rejected later.
    """
    read = 0
    try:
        with open_file(path, file, limit) as f:
            for lineno, raw in enumerate(f, 1):
                read += len(raw)
                if read > limit:
                    raise PolicyFileError(file, lineno, f"over the size limit of {limit} bytes")
                if b"\x00" in raw:
                    raise PolicyFileError(file, lineno, "binary data (a NUL byte)")
                line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield line
    except OSError as exc:
        raise PolicyFileError(file, 0, f"cannot read: {exc.strerror}") from None
