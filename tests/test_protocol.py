"""Framing of control messages: any chunking decodes the same; garbage is refused."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.engine import protocol
from scheduler.engine.protocol import FrameSplitter, FunctionError, Ready, Response
from scheduler.errors import ProtocolError

encoder = msgspec.msgpack.Encoder()


def splitter() -> FrameSplitter:
    return FrameSplitter(msgspec.msgpack.Decoder(protocol.FromEnvironment))


messages = st.one_of(
    st.builds(Ready, st.integers(0, 2**30)),
    st.builds(Response, st.text(max_size=40), st.binary(max_size=3000), st.integers(0, 2**40), st.integers(0, 2**30)),
    st.builds(
        FunctionError, st.text(max_size=40), st.text(max_size=30), st.binary(max_size=300), st.integers(0, 2**40), st.integers(0, 2**30)
    ),
)


@given(st.lists(messages, min_size=1, max_size=8), st.lists(st.integers(1, 700), min_size=1, max_size=50))
def test_any_chunking_yields_the_same_messages(msgs: list[msgspec.Struct], cuts: list[int]) -> None:
    stream = b"".join(protocol.frame(encoder, m) for m in msgs)
    s = splitter()
    out: list[object] = []
    pos = 0
    for cut in cuts:
        out += s.feed(stream[pos : pos + cut])
        pos += cut
    out += s.feed(stream[pos:])
    assert out == msgs
    assert s.buffered == 0


@given(st.binary(min_size=1, max_size=200))
def test_garbage_never_decodes_silently_into_something_else(data: bytes) -> None:
    s = splitter()
    try:
        for msg in s.feed(data):
            assert isinstance(msg, Ready | Response | FunctionError | protocol.InitFailed)
    except ProtocolError:
        pass


def test_bad_lengths_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="frame length"):
        splitter().feed(b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError, match="frame length"):
        splitter().feed(b"\x00\x00\x00\x00")
    with pytest.raises(ProtocolError, match="undecodable"):
        splitter().feed(b"\x00\x00\x00\x07garbage")


def test_frame_is_one_buffer_with_a_length_prefix() -> None:
    frame = protocol.frame(encoder, Ready(2))
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
