"""Open a policy file safely: regular files only, a size limit, text not binary, one line at a time."""

from __future__ import annotations

import errno
import os
import stat
from typing import Iterator

from sinkdns.policy.source import PolicyFileError

SIZE_LIMIT = 200 * 1024 * 1024


def check_file(path: str, file: str, limit: int = SIZE_LIMIT) -> os.stat_result:
    """stat() following symlinks; PolicyFileError for loops, dangling links, non-files and oversize files."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PolicyFileError(file, 0, "symlink loop") from None
        raise PolicyFileError(file, 0, f"cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PolicyFileError(file, 0, "not a regular file")
    if st.st_size > limit:
        raise PolicyFileError(file, 0, f"{st.st_size} bytes is over the size limit of {limit}")
    return st


def read_lines(path: str, file: str, limit: int = SIZE_LIMIT) -> Iterator[str]:
    """The file's lines without line ends. Binary data (a NUL byte) or a read error fails the whole file.

    Bytes that are not UTF-8 survive as surrogates, so only the line holding them is rejected later.
    """
    check_file(path, file, limit)
    read = 0
    try:
        with open(path, "rb") as f:
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
