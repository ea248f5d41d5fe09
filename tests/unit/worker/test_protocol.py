"""The frame protocol between the executor, the zygote and the workers."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading

import pytest

from qruntime.worker.protocol import (
    FrameParser,
    FrameSocket,
    ProtocolError,
    encode_frame,
    read_frame,
)


def test_frames_round_trip_with_large_payloads_and_descriptors() -> None:
    a, b = socket.socketpair()
    left, right = FrameSocket(a), FrameSocket(b)
    read_end, write_end = os.pipe()
    payload = os.urandom(3 * 1024 * 1024)  # larger than the socket buffer: a partial sendmsg
    sender = threading.Thread(
        target=left.send, args=({"kind": "result", "n": 1}, payload), kwargs={"fds": [write_end]}
    )
    sender.start()
    frame = right.recv()
    sender.join()
    assert frame is not None
    header, data, fds = frame
    assert header == {"kind": "result", "n": 1}
    assert bytes(data) == payload
    assert len(fds) == 1
    os.write(fds[0], b"through the passed fd")
    assert os.read(read_end, 100) == b"through the passed fd"
    for fd in (read_end, write_end, *fds):
        os.close(fd)
    left.close()
    assert right.recv() is None
    right.close()


def test_parser_reassembles_frames_fed_byte_by_byte() -> None:
    raw = b"".join(bytes(b) for b in encode_frame({"op": "a"}, b"xy") + encode_frame({"op": "b"}))
    parser = FrameParser()
    frames = []
    for i in range(len(raw)):
        frames += parser.feed(raw[i : i + 1])
    assert frames == [({"op": "a"}, b"xy"), ({"op": "b"}, b"")]


def test_parser_refuses_a_header_that_is_not_a_json_object() -> None:
    with pytest.raises(ProtocolError, match="not a JSON object"):
        FrameParser().feed(struct.pack("!II", 2, 0) + b"[]")


def test_a_lying_length_prefix_is_refused_before_buffering() -> None:
    with pytest.raises(ProtocolError, match="over the limit"):
        FrameParser().feed(struct.pack("!II", 2, 2**31))


def test_async_reader_reports_a_frame_cut_short() -> None:
    async def go() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"".join(bytes(b) for b in encode_frame({"k": 1}, b"abc")))
        reader.feed_data(b"".join(bytes(b) for b in encode_frame({"k": 2}, b"abcdef"))[:-2])
        reader.feed_eof()
        assert await read_frame(reader) == ({"k": 1}, b"abc")
        with pytest.raises(ProtocolError, match="middle of a frame"):
            await read_frame(reader)

    asyncio.run(go())
