"""Reading gRPC request messages: satchel's own size limit, and bytes that do not parse.

grpcio parses a request with the deserializer it is given, before any handler runs; a
deserializer that raises, or a message over grpcio's ``grpc.max_receive_message_length``,
ends the whole call. On a ``ModelStreamInfer`` stream that would end every request
after it too, so satchel reads each message itself (:func:`reader`): a message over
satchel's limit (``--max-body-size``) or one that is not a valid protobuf message becomes
an :class:`Unreadable` in place of the request, which the transport answers like any
other failed request (``RESOURCE_EXHAUSTED`` or ``INVALID_ARGUMENT`` for a unary call, an
``error_message`` for that one message of a stream, which stays open). No grpcio here.

grpcio's own limit is set above satchel's (:func:`grpcio_receive_limit`: twice it, at
least 1 MiB over it, at most protobuf's 2 GiB) so that satchel's check is the one a
client normally meets; grpcio's still bounds what one message can make the server
buffer, and a message over it ends the call with grpcio's ``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from satchel.errors import InputFormatError, LimitExceededError

# protobuf's own limit on one message, and grpcio's largest receive limit
PROTOBUF_LIMIT = 2**31 - 1
# ModelInferRequest's leading fields, read from a refused message so that its answer on a
# stream names the request it refuses
_NAME_FIELDS = {1: "model_name", 2: "model_version", 3: "id"}
_PEEK_FIELDS = 16  # top-level fields looked at before giving up (the names come first)
_PEEK_CHARS = 200


class Unreadable:
    """A request message refused before it was parsed, standing in for the request.

    Attributes:
        error: why (:class:`~satchel.errors.LimitExceededError` for a message over the
            limit, :class:`~satchel.errors.InputFormatError` for bytes that do not parse),
            raised by the transport when the call is invoked and mapped to its status there.
        model_name, model_version, id: what could be read of them from the message's
            bytes without parsing it (empty when they could not be), so that an answer on
            a stream says which request it refuses.
    """

    __slots__ = ("error", "id", "model_name", "model_version")

    def __init__(self, error: InputFormatError, names: dict[str, str]) -> None:
        self.error = error
        self.model_name = names.get("model_name", "")
        self.model_version = names.get("model_version", "")
        self.id = names.get("id", "")


def grpcio_receive_limit(limit: int | None) -> int:
    """grpcio's ``grpc.max_receive_message_length`` for satchel's limit ``limit`` (None:
    no limit of satchel's): twice it and at least 1 MiB over it, so that messages a little
    or even much over the limit reach satchel's own check, at most protobuf's 2 GiB."""
    if limit is None:
        return PROTOBUF_LIMIT
    return min(PROTOBUF_LIMIT, max(2 * limit, limit + (1 << 20)))


def size_text(n: int) -> str:
    """A byte count as the CLI takes it (``64 KiB``), or in bytes when not a round unit."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def reader(message: Any, limit: int | None, *, peek: bool = False
           ) -> Callable[[bytes], Any]:
    """A request deserializer for grpcio: the parsed ``message`` (a protobuf class), or an
    :class:`Unreadable` when the bytes are over ``limit`` or do not parse. Never raises.

    Args:
        message: the request's protobuf message class.
        limit: satchel's limit on a message in bytes (None: none).
        peek: read the model name, version and id of a refused ``ModelInferRequest`` from
            its bytes (for a stream's answer).
    """
    parse = message.FromString
    kind = message.DESCRIPTOR.name

    def read(data: bytes) -> Any:
        if limit is not None and len(data) > limit:
            return Unreadable(LimitExceededError(
                f"the request message ({len(data)} bytes) is over the limit of "
                f"{size_text(limit)} ({limit} bytes; --max-body-size)",
                limit="max_body_size"), _names(data) if peek else {})
        try:
            return parse(data)
        except (DecodeError, ValueError, RuntimeError):
            return Unreadable(InputFormatError(
                f"the request is not a valid {kind} protobuf message"),
                _names(data) if peek else {})

    return read


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise IndexError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _names(data: bytes) -> dict[str, str]:
    """The model name, version and id of a ``ModelInferRequest`` from its wire bytes:
    protobuf writes fields in number order, so they lead the message. Looks at a few
    top-level fields only, skipping each by its length (no copy of the tensors); what is
    not well formed is left out."""
    out: dict[str, str] = {}
    pos = 0
    try:
        for _ in range(_PEEK_FIELDS):
            if pos >= len(data) or len(out) == len(_NAME_FIELDS):
                break
            key, pos = _varint(data, pos)
            field, wire = key >> 3, key & 7
            if wire == 2:
                size, pos = _varint(data, pos)
                if pos + size > len(data):
                    break
                if field in _NAME_FIELDS and _NAME_FIELDS[field] not in out:  # the first
                    text = data[pos:pos + min(size, 4 * _PEEK_CHARS)]
                    out[_NAME_FIELDS[field]] = text.decode("utf-8", "replace")[:_PEEK_CHARS]
                pos += size
            elif wire == 0:
                _, pos = _varint(data, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            else:
                break
    except IndexError:
        pass
    return out
