"""Ask an upstream over TCP (RFC 7766), for answers that came back truncated over UDP."""

from __future__ import annotations

import asyncio

from sinkdns.upstream.entropy import entropy
from sinkdns.upstream.health import Upstream
from sinkdns.upstream.match import answers_question



async def exchange_tcp(up: Upstream, query: bytes, name: bytes, tail: bytes, timeout: float) -> bytes:
    """One query on a new connection; the answer must carry our ID and echo the question."""
    qid = entropy.u16().to_bytes(2, "big")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(up.host, up.port)
        try:
            message = qid + query[2:]
            writer.write(len(message).to_bytes(2, "big") + message)
            length = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(length)
        finally:
            writer.close()
    if data[:2] != qid or not answers_question(data, name, tail):
        up.ignored += 1
        raise ConnectionError(f"{up.label}: TCP answer does not match the question")
    return data
