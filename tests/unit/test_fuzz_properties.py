"""Property-based tests of the packet handler and the upstream-answer handler (tests/fuzz/properties.py).

`make test` runs 20,000 inputs in all here; `make fuzz` runs the same properties far longer.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.properties import BadGroup, FakeGroup, bad_answers, build_app, check_answer, check_packet, \
    client_packets, good_answers

FUZZ = settings(deadline=None, derandomize=False, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def packet_app(tmp_path_factory):
    return build_app(tmp_path_factory.mktemp("zones"), FakeGroup())


@pytest.fixture(scope="module")
def answer_app(tmp_path_factory):
    group = BadGroup()
    return build_app(tmp_path_factory.mktemp("zones"), group, cache_size=0), group


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_any_client_packet_gets_a_well_formed_reply_or_none(packet_app, loop, transport):
    @settings(FUZZ, max_examples=5_000)
    @given(client_packets)
    def prop(data):
        check_packet(packet_app, loop, data, transport)

    prop()


@pytest.mark.parametrize("answers, examples, whole", [(bad_answers, 6_000, False), (good_answers, 4_000, True)],
                         ids=["any answer is rejected or relayed well-formed", "well-formed answers are relayed whole"])
def test_upstream_answers(answer_app, loop, answers, examples, whole):
    app, group = answer_app

    @settings(FUZZ, max_examples=examples)
    @given(answers)
    def prop(answer):
        flags, body = answer
        check_answer(app, group, loop, flags, body, whole=whole)

    prop()
