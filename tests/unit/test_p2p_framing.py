"""Framing of p2p streams: frames survive any split into reads, caps are enforced from
the header alone, and a stream that ends mid-frame is an error, not a short message."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.p2p.framing import (
    FrameReader,
    FrameWriter,
    OversizeFrame,
    StreamClosed,
    TruncatedFrame,
    UnknownType,
    encode_frame,
)

pytestmark = pytest.mark.anyio
CAPS = {1: 100, 2: 10_000}


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


class Pipe:
    """One end of an in-memory byte pipe with the read/write shape of a libp2p stream,
    delivering at most ``chunk`` bytes per read (to split frames across reads)."""

    def __init__(self, stream: trio.abc.Stream, chunk: int = 1 << 20) -> None:
        self.stream = stream
        self.chunk = chunk
        self.writes = 0

    async def read(self, n: int | None = None) -> bytes:
        return await self.stream.receive_some(min(n or self.chunk, self.chunk))

    async def write(self, data: bytes) -> None:
        self.writes += 1
        await self.stream.send_all(data)


def pipe(chunk: int = 1 << 20) -> tuple[Pipe, Pipe]:
    left, right = trio.testing.memory_stream_pair()
    return Pipe(left), Pipe(right, chunk)


async def test_frames_survive_being_split_into_one_byte_reads() -> None:
    sender, receiver = pipe(chunk=1)
    frames = [(1, b"hello"), (2, b"x" * 5000), (1, b"")]
    await sender.write(b"".join(encode_frame(k, b) for k, b in frames))
    reader = FrameReader(receiver)
    assert [await reader.read_frame(CAPS) for _ in frames] == frames
    assert reader.bytes_read == sum(5 + len(b) for _, b in frames)


async def test_many_frames_in_one_read_are_all_returned() -> None:
    sender, receiver = pipe()
    await sender.write(b"".join(encode_frame(1, bytes([n])) for n in range(50)))
    reader = FrameReader(receiver)
    assert [(await reader.read_frame(CAPS))[1] for _ in range(50)] == [
        bytes([n]) for n in range(50)
    ]


async def test_an_oversize_frame_is_refused_from_its_header_alone() -> None:
    sender, receiver = pipe()
    # Only the header is ever sent: the reader must not wait for the 101-byte body.
    await sender.write((101).to_bytes(4, "big") + b"\x01")
    with trio.fail_after(1), pytest.raises(OversizeFrame, match="101 bytes > cap 100"):
        await FrameReader(receiver).read_frame(CAPS)


async def test_a_type_not_allowed_on_the_stream_is_refused() -> None:
    sender, receiver = pipe()
    await sender.write(encode_frame(7, b"abc"))
    with pytest.raises(UnknownType, match="type 7"):
        await FrameReader(receiver).read_frame(CAPS)


async def test_a_stream_ending_inside_a_frame_is_truncation() -> None:
    sender, receiver = pipe()
    await sender.write(encode_frame(2, b"y" * 50)[:30])
    await sender.stream.send_eof()
    with pytest.raises(TruncatedFrame, match="50-byte body"):
        await FrameReader(receiver).read_frame(CAPS)

    sender, receiver = pipe()
    await sender.write(b"\x00\x00")
    await sender.stream.send_eof()
    with pytest.raises(TruncatedFrame, match="frame header"):
        await FrameReader(receiver).read_frame(CAPS)


async def test_a_clean_end_between_frames_is_stream_closed() -> None:
    sender, receiver = pipe()
    await sender.write(encode_frame(1, b"last"))
    await sender.stream.send_eof()
    reader = FrameReader(receiver)
    assert await reader.read_frame(CAPS) == (1, b"last")
    with pytest.raises(StreamClosed):
        await reader.read_frame(CAPS)


async def test_the_writer_batches_frames_into_one_write() -> None:
    sender, receiver = pipe()
    writer = FrameWriter(sender)
    for n in range(100):
        await writer.add(1, bytes([n]) * 10)
    assert sender.writes == 0
    await writer.flush()
    assert sender.writes == 1
    assert writer.bytes_written == 100 * 15
    reader = FrameReader(receiver)
    assert (await reader.read_frame(CAPS))[1] == b"\x00" * 10
