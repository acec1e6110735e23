"""read_lines reads a block at a time: lines, line ends, BOM and errors must not depend on where blocks end."""

import re

import pytest

from sinkdns.policy import files
from sinkdns.policy.files import read_lines
from sinkdns.policy.source import PolicyFileError

BODY = "\ufeffa.example\r\nb.example\n\nc\u00e9.example\r\r\nlast.example".encode() + b"\xff"
LINES = ["a.example", "b.example", "", "c\u00e9.example", "last.example\udcff"]


@pytest.fixture(params=[1, 2, 3, 7, files.BLOCK])
def block(request, monkeypatch):
    monkeypatch.setattr(files, "BLOCK", request.param)
    return request.param


def lines_of(tmp_path, body: bytes, limit: int = files.SIZE_LIMIT) -> list[str]:
    path = tmp_path / "list.txt"
    path.write_bytes(body)
    return list(read_lines(str(path), "list.txt", limit))


def test_lines_whatever_the_block_size(tmp_path, block):
    assert lines_of(tmp_path, BODY) == LINES
    assert lines_of(tmp_path, BODY + b"\n") == LINES


@pytest.mark.parametrize("body, error", [
    (b"a.example\nb.ex\x00ample\nc.example\n", "list.txt:2: binary data (a NUL byte)"),
    (b"a.example\nb.example\n\x00", "list.txt:3: binary data (a NUL byte)"),
])
def test_nul_names_its_line(tmp_path, block, body, error):
    with pytest.raises(PolicyFileError, match=re.escape(error)):
        lines_of(tmp_path, body)


def test_size_limit_names_the_line_it_is_crossed_in(tmp_path, block, monkeypatch):
    monkeypatch.setattr(files, "open_file", lambda path, file, limit: open(path, "rb"))  # a file that grew after the check
    with pytest.raises(PolicyFileError, match="list.txt:2: over the size limit of 12 bytes"):
        lines_of(tmp_path, b"a.example\nb.example\nc.example\n", limit=12)
