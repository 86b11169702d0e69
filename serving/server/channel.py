"""The local channel between the front server and a model worker: one framed message per
request and one per reply, on a unix socket.

A message is pickled with protocol 5 and its large buffers (numpy arrays) travel
out-of-band: a header with the lengths, the pickle, then each buffer's raw bytes, all
handed to the kernel in one ``sendmsg`` and, when it fits, read back with one
``recv_into``. Arrays are never copied into the pickle stream and never JSON-encoded.

A DataFrame is not pickled as one (pandas' reduce and rebuild cost more than the rest of
a 1-row call): a frame of numpy-typed columns goes as its 2-D block (one dtype) or its
column arrays (several), and is rebuilt around a cached column index. Those arrays, and a
numeric array the model returns, travel as (dtype, shape, order, raw buffer), not as
pickled ndarrays: numpy's own reduce and rebuild cost ~15 us a message each way, more
than the buffer's copy at 1,000 rows; the receiver wraps the received bytes with
``np.frombuffer``, no copy. Both ends are the same satchel (an environment installs the
running satchel's wheel; :data:`VERSION` is checked when a worker starts), and only the
front server that started a worker holds the key its socket asks for.
"""

from __future__ import annotations

import hmac
import pickle
import socket
import struct
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the model worker never needs asyncio: not imported at its start
    import asyncio

KEY_BYTES = 32
# The message layout below; a worker reports it when ready, and a front server refuses a
# worker of another layout (an environment cached by another satchel build) by name.
VERSION = 2
_HEAD = struct.Struct("<QI")  # pickle length, number of out-of-band buffers
_LEN = struct.Struct("<Q")
_FIRST = 1 << 16  # one recv_into of this size takes a whole small message
_MAX_BUFFERS = 4096


class ChannelError(OSError):
    """The peer sent something that is not a channel message (or closed mid-message)."""


def connect(path: str, key: bytes, timeout: float | None = None) -> socket.socket:
    """A connection to the worker listening on ``path``, authenticated with ``key``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.settimeout(None)
        sock.sendall(key)
    except BaseException:
        sock.close()
        raise
    return sock


def accept_key(sock: socket.socket, key: bytes, timeout: float = 10.0) -> bool:
    """Read the client's key and compare it in constant time."""
    sock.settimeout(timeout)
    got = b""
    try:
        while len(got) < KEY_BYTES:
            chunk = sock.recv(KEY_BYTES - len(got))
            if not chunk:
                return False
            got += chunk
    except OSError:
        return False
    sock.settimeout(None)
    return hmac.compare_digest(got, key)


def _frame(obj: Any) -> tuple[list[Any], int]:
    """The parts of one message (header, pickle, out-of-band buffers) and its length."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    head = _HEAD.pack(len(body), len(raws))
    if raws:
        head += struct.pack(f"<{len(raws)}Q", *(r.nbytes for r in raws))
    return [head, body, *raws], len(head) + len(body) + sum(r.nbytes for r in raws)


def _first_send(sock: socket.socket, parts: list[Any]) -> int:
    """Bytes the kernel took in one ``sendmsg`` (0 when it would block or there are too
    many parts for one call)."""
    if len(parts) >= 1000:
        return 0
    try:
        return sock.sendmsg(parts)
    except BlockingIOError:
        return 0


def _rest(parts: list[Any], sent: int) -> memoryview:
    return memoryview(b"".join(bytes(p) for p in parts))[sent:]


def send(sock: socket.socket, obj: Any) -> None:
    """Send one message: header, pickle and out-of-band buffers in one ``sendmsg``."""
    parts, total = _frame(obj)
    sent = _first_send(sock, parts)
    if sent < total:
        # A partial send (a large message, a signal) or too many parts: send the rest.
        sock.sendall(_rest(parts, sent))


async def send_async(loop: asyncio.AbstractEventLoop, sock: socket.socket, obj: Any) -> None:
    """:func:`send` on a non-blocking socket, from the event loop: the kernel takes a
    small message at once; the rest of a large one is written as the socket drains."""
    parts, total = _frame(obj)
    sent = _first_send(sock, parts)
    if sent < total:
        await loop.sock_sendall(sock, _rest(parts, sent))


def recv(sock: socket.socket) -> Any:
    """Receive one message (blocks); EOFError when the peer closed between messages.

    Raises:
        EOFError: the connection closed before a message started.
        ChannelError: it closed mid-message, or the header is not a channel header.
    """
    parser = _parser()
    into = next(parser)
    try:
        while True:
            into = parser.send(sock.recv_into(into))
    except StopIteration as done:
        return done.value


async def recv_async(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> Any:
    """:func:`recv` on a non-blocking socket, from the event loop: the reply wakes the
    loop's own poll, no thread waits for it (same errors as :func:`recv`)."""
    parser = _parser()
    into = next(parser)
    try:
        while True:
            into = parser.send(await loop.sock_recv_into(sock, into))
    except StopIteration as done:
        return done.value


def _parser() -> Generator[memoryview, int, Any]:
    """Reads one message: yields where the next bytes go, is sent how many came (0: the
    peer closed), returns the message. One parser serves the blocking and the asyncio
    reader."""
    first = bytearray(_FIRST)
    n = yield memoryview(first)
    if n == 0:
        raise EOFError("the channel closed")
    while n < _HEAD.size:
        n += _more((yield memoryview(first)[n:]))
    plen, nbuf = _HEAD.unpack_from(first)
    if nbuf > _MAX_BUFFERS:
        raise ChannelError(f"a channel message with {nbuf} buffers")
    hlen = _HEAD.size + _LEN.size * nbuf
    while n < hlen:
        n += _more((yield memoryview(first)[n:]))
    lens = struct.unpack_from(f"<{nbuf}Q", first, _HEAD.size) if nbuf else ()
    size = plen + sum(lens)
    if n - hlen > size:
        raise ChannelError("a channel message longer than its header says")
    if hlen + size <= _FIRST:
        msg = memoryview(first)[hlen:hlen + size]
        got = n - hlen
    else:
        msg = memoryview(bytearray(size))
        got = n - hlen
        msg[:got] = memoryview(first)[hlen:n]
    while got < size:
        got += _more((yield msg[got:]))
    offset = plen
    views = []
    for length in lens:
        views.append(msg[offset:offset + length])
        offset += length
    return pickle.loads(msg[:plen], buffers=views)


def _more(n: int) -> int:
    if n == 0:
        raise ChannelError("the channel closed in the middle of a message")
    return n


# --- DataFrames as buffers -------------------------------------------------------------


def pack_input(data: Any) -> Any:
    """What goes on the channel for ``data`` (already fitted to the signature)."""
    from satchel._normalize import pandas_kind

    if pandas_kind(data) != "frame":
        return ("raw", data)
    import numpy as np

    df = data
    index = df.index
    names = _plain_names(df.columns)
    if names is None or not (type(index).__name__ == "RangeIndex" and index.start == 0
                             and index.step == 1):
        return ("raw", df)
    # DataFrame.dtypes builds a Series (~15 us); the block manager lists them in ~1 us.
    get = getattr(getattr(df, "_mgr", None), "get_dtypes", None)
    dtypes = list(get()) if get is not None else df.dtypes.tolist()
    if not dtypes or not all(isinstance(d, np.dtype) and d.kind in _NUMPY_KINDS for d in dtypes):
        return ("raw", df)  # strings, objects, extension types: pandas' own pickle
    if all(d == dtypes[0] for d in dtypes):
        # One dtype: the frame's single 2-D block (a view, not a copy).
        return ("block", names, to_wire(df.to_numpy()))
    return ("columns", names, [to_wire(df[c].to_numpy()) for c in names])


_NUMPY_KINDS = "biufcmM"  # numpy kinds whose values hold no Python objects
_RAW_KINDS = "biufc"  # of those, kinds whose buffer numpy exports (not datetimes)
_INDEXES: dict[tuple[str, ...], Any] = {}
# id(column Index) -> (that Index, its names when they are distinct strings, else None).
# Listing a pandas 3 (Arrow-backed) Index costs ~15 us a request; the decoders share one
# Index per set of names, and an Index is immutable, so each is listed once.
_NAMES: dict[int, tuple[Any, tuple[str, ...] | None]] = {}


def _plain_names(columns: Any) -> tuple[str, ...] | None:
    hit = _NAMES.get(id(columns))
    if hit is not None and hit[0] is columns:
        return hit[1]
    listed = columns.tolist()
    names = (tuple(listed) if all(isinstance(c, str) for c in listed)
             and len(set(listed)) == len(listed) else None)
    if len(_NAMES) >= 256:
        _NAMES.clear()
    _NAMES[id(columns)] = (columns, names)  # the reference keeps the id from being reused
    return names


def unpack_input(packed: Any) -> Any:
    """The data :func:`pack_input` packed."""
    kind = packed[0]
    if kind == "raw":
        return packed[1]
    import pandas as pd

    names = packed[1]
    index = _INDEXES.get(names)
    if index is None:
        if len(_INDEXES) > 256:
            _INDEXES.clear()
        index = _INDEXES[names] = pd.Index(list(names))
    if kind == "block":
        return pd.DataFrame(_writable(from_wire(packed[2])), columns=index, copy=False)
    return pd.DataFrame({name: _writable(from_wire(wire)) for name, wire in zip(names, packed[2])},
                        copy=False)


# --- numeric arrays as raw buffers ----------------------------------------------------


def to_wire(value: Any) -> tuple[Any, ...]:
    """``value`` as it travels: a C- or Fortran-contiguous array of plain numbers as
    ``("array", dtype, shape, Fortran order, raw buffer)`` (the buffer out-of-band, no
    ndarray pickle); anything else as ``("object", value)``."""
    import numpy as np

    if type(value) is np.ndarray and value.dtype.kind in _RAW_KINDS:
        if value.flags.c_contiguous:
            return ("array", value.dtype.str, value.shape, False, pickle.PickleBuffer(value.data))
        if value.flags.f_contiguous:  # a frame's 2-D block: its transpose is C-ordered
            return ("array", value.dtype.str, value.shape, True, pickle.PickleBuffer(value.T.data))
    return ("object", value)


def from_wire(wire: tuple[Any, ...]) -> Any:
    """The value :func:`to_wire` sent; an array is writable (it owns the received bytes,
    and a model may write to its input as it could in process).

    Raises:
        ChannelError: not what :func:`to_wire` sends.
    """
    if wire[0] == "object":
        return wire[1]
    if wire[0] != "array" or len(wire) != 5:
        raise ChannelError("a channel value that is neither an array nor an object")
    import numpy as np

    _, dtype, shape, fortran, raw = wire
    if fortran:
        return np.frombuffer(raw, dtype=dtype).reshape(shape[::-1]).T
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _writable(array: Any) -> Any:
    """The array, or a copy of it when read-only: pandas 3 hands out read-only views
    (copy-on-write), pickle keeps that flag across the channel, and the rebuilt frame
    is the model's own input, which it may write to as it could in process. Anything
    that is not an array as it is."""
    flags = getattr(array, "flags", None)
    return array if flags is None or flags.writeable else array.copy()
