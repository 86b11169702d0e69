"""The front server <-> model worker channel on real unix sockets: what goes in comes out
exactly (frames as buffers, other data as pickles), large messages, a client without
the key, and a peer that closes mid-message."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from satchel.serving.server import channel


def _round_trip(obj: Any) -> Any:
    a, b = socket.socketpair()
    with a, b:
        result: list[Any] = []
        # a large message fills the socket buffer: read it while it is being sent
        reader = threading.Thread(target=lambda: result.append(channel.recv(b)))
        reader.start()
        channel.send(a, obj)
        reader.join(30)
        return result[0]


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"a": [1.5, 2.0], "b": [3.0, np.nan]}),  # one dtype: the 2-D block
    pd.DataFrame({"a": np.arange(3, dtype=np.int32), "b": [0.5, 1.5, 2.5],
                  "t": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
                  "f": [True, False, True]}),  # several dtypes: column arrays
    pd.DataFrame({"s": ["x", None], "n": [1, 2]}),  # text: pandas' own pickle
    pd.DataFrame({"a": [1.0, 2.0]}, index=[10, 20]),  # a non-default index is kept
    pd.DataFrame({"a": np.zeros(0)}),
])
def test_frames_arrive_exactly(frame: pd.DataFrame) -> None:
    got = channel.unpack_input(_round_trip(("m", channel.pack_input(frame), {"k": 1}))[1])
    pd.testing.assert_frame_equal(got, frame)
    # the rebuilt frame is the model's own input: it may write to it
    if len(got) and got.dtypes.iloc[0].kind == "f":
        got.iloc[0, 0] = 7.0


def test_numeric_frames_travel_as_buffers_not_a_frame_pickle() -> None:
    frame = pd.DataFrame(np.ones((1000, 4)), columns=list("abcd"))
    kind, names, block = channel.pack_input(frame)
    assert kind == "block" and names == ("a", "b", "c", "d")
    # the block as dtype, shape, order and its raw bytes: no ndarray pickle
    assert block[:4] == ("array", "<f8", (1000, 4), True)
    assert block[4].raw().nbytes == 1000 * 4 * 8
    mixed = frame.astype({"a": np.int64})
    kind, _, columns = channel.pack_input(mixed)
    assert kind == "columns" and [c[:3] for c in columns] == [
        ("array", "<i8", (1000,)), *[("array", "<f8", (1000,))] * 3]
    # an Index listed once is not listed again, but a new one with other names is
    assert channel.pack_input(frame.rename(columns={"a": "z"}))[1] == ("z", "b", "c", "d")
    assert channel.pack_input(frame.set_axis(["a", "a", "b", "c"], axis=1))[0] == "raw"


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4)),  # byte order kept
    np.arange(10)[::3],  # not contiguous: pickled
    np.array([True, False]), np.array([1 + 2j]), np.zeros((0, 3)), np.array(2.5),
    np.array(["2024-01-01"], dtype="M8[ns]"),  # no buffer export: pickled
    np.array(["x", None], dtype=object),
])
def test_arrays_arrive_exactly_and_writable(array: np.ndarray) -> None:
    got = channel.from_wire(_round_trip(("ok", channel.to_wire(array)))[1])
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    if array.dtype.kind != "O":
        assert got.flags.writeable


def test_a_value_that_is_not_on_the_wire_layout_is_a_channel_error() -> None:
    with pytest.raises(channel.ChannelError, match="neither an array nor an object"):
        channel.from_wire(("array", "<f8", (1,)))
    with pytest.raises(channel.ChannelError):
        channel.from_wire(("module", "os"))


def test_large_arrays_and_dicts_round_trip() -> None:
    big = np.random.default_rng(0).normal(size=(300_000, 3))  # 7 MB: several reads
    out = _round_trip(("ok", {"x": big, "y": [1, "two"]}))
    np.testing.assert_array_equal(out[1]["x"], big)
    assert out[1]["y"] == [1, "two"]


def test_a_client_without_the_key_gets_nothing(tmp_path: Path) -> None:
    key = b"k" * channel.KEY_BYTES
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(2)
    verdicts: list[bool] = []

    def accept(n: int) -> None:
        for _ in range(n):
            conn, _ = server.accept()
            with conn:
                verdicts.append(channel.accept_key(conn, key, timeout=5))

    t = threading.Thread(target=accept, args=(2,))
    t.start()
    with channel.connect(path, b"x" * channel.KEY_BYTES, timeout=5) as wrong:
        channel.send(wrong, ("m", ("raw", 1), None))
    with channel.connect(path, key, timeout=5):
        pass
    t.join(10)
    server.close()
    assert verdicts == [False, True]


def test_a_peer_closing_mid_message_is_a_channel_error() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack("<QI", 1000, 0) + b"\x80\x05")
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(channel.ChannelError, match="middle of a message"):
            channel.recv(b)
        with pytest.raises(EOFError):
            channel.recv(b)


def test_a_header_with_absurd_buffer_count_is_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack("<QI", 1, 10**9))
        with pytest.raises(channel.ChannelError, match="buffers"):
            channel.recv(b)


def _async_round_trip(obj: Any) -> Any:
    """send_async/recv_async on non-blocking sockets, both ends on one event loop."""
    import asyncio

    async def go() -> Any:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)
            # both at once: a large message only fits as the reader drains it
            _, got = await asyncio.gather(channel.send_async(loop, a, obj),
                                          channel.recv_async(loop, b))
            return got

    return asyncio.run(go())


@pytest.mark.parametrize("obj", [
    ("predict", "m", ("raw", 1), None),
    {"big": np.arange(3_000_000, dtype=np.float64)},  # 24 MB: many partial writes and reads
    [np.arange(i, dtype=np.int16) for i in range(1200)],  # too many parts for one sendmsg
])
def test_the_asyncio_ends_carry_what_the_blocking_ends_carry(obj: Any) -> None:
    got = _async_round_trip(obj)
    expected = _round_trip(obj)
    for one in (got, expected):
        assert type(one) is type(obj)
    if isinstance(obj, dict):
        assert np.array_equal(got["big"], obj["big"])
    elif isinstance(obj, list):
        assert all(np.array_equal(g, o) for g, o in zip(got, obj, strict=True))
    else:
        assert got == obj == expected


def test_the_asyncio_reader_sees_a_peer_closing_mid_message() -> None:
    import asyncio

    async def go() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            b.setblocking(False)
            a.sendall(struct.pack("<QI", 1000, 0) + b"\x80\x05")
            a.shutdown(socket.SHUT_WR)
            with pytest.raises(channel.ChannelError, match="middle of a message"):
                await channel.recv_async(loop, b)
            with pytest.raises(EOFError):
                await channel.recv_async(loop, b)

    asyncio.run(go())


def test_a_worker_of_another_channel_version_is_refused_by_name(tmp_path: Path) -> None:
    """An environment cached by another satchel build (same version number) runs a worker
    that would misread every message: the front refuses it when it starts, naming it."""
    import os
    import subprocess

    from satchel.errors import SatchelError
    from satchel.serving.server.env_workers import EnvWorker

    env = tmp_path / "envs" / "abc123"
    (env / "bin").mkdir(parents=True)
    python = env / "bin" / "python"
    # what an older worker prints when its models are loaded: no "channel" field
    python.write_text("#!/bin/sh\ncat >/dev/null\n"
                      "echo '{\"ready\": {\"m\": {\"flavor\": \"sklearn\"}}, \"pid\": 1}'\n"
                      "exec sleep 60\n")
    python.chmod(0o755)
    worker = EnvWorker(python, [{"name": "m", "path": str(tmp_path), "options": {}}], "abc123")
    with pytest.raises(SatchelError) as info:
        worker.start()
    message = str(info.value)
    assert "channel version 1" in message and f"speaks {channel.VERSION}" in message
    assert str(env) in message
    worker.stop()
    # the stale worker was killed, not left running
    out = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "sleep 60"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == ""
