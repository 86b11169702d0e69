"""What a protocol is to the data plane: a codec object, and the values it passes around.

A protocol turns a transport's request message (HTTP body bytes, a gRPC message) into
the model's input, a prediction into a reply message, and an error into the protocol's
error body. It knows nothing about the transport (no status codes, no sockets) and
nothing about batching or threads: :class:`~satchel.serving.server.dataplane.DataPlane`
calls it, the transports call the data plane.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from satchel.model import Prediction
    from satchel.serving.server.repository import ServedModel


@dataclass(frozen=True)
class Inbound:
    """A request as a transport hands it to the data plane.

    Attributes:
        message: the request message when the transport has it already (bytes of an
            HTTP body, a gRPC message), else None and ``receive`` reads it.
        receive: reads the message (an HTTP body still on the wire). The data plane
            calls it after checking the model is ready, while the batcher counts the
            request as incoming.
        content_type: the body's media type (HTTP), None when the protocol has none.
        headers: request headers or metadata a protocol reads (lower-case names).
    """

    message: Any = None
    receive: Callable[[], Awaitable[Any]] | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decoded:
    """A request decoded for a model: its input, its params, and what encoding needs."""

    data: Any
    params: dict[str, Any] | None
    context: Any = None  # protocol-specific (e.g. the V2 request id and outputs asked for)


@dataclass
class Reply:
    """A scored request: the reply message and what the coercion policy did on the way.

    Attributes:
        body: the reply message (bytes for the HTTP protocols).
        content_type: its media type, for transports that send one.
        headers: protocol-level reply headers (e.g. the binary extension's header length).
        dropped_columns: input columns the signature does not name (the policy dropped).
        unknown_params: params the param schema does not name (ignored).
        rows: rows scored.
    """

    body: Any
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    dropped_columns: tuple[str, ...] = ()
    unknown_params: tuple[str, ...] = ()
    rows: int = 0


class Protocol(ABC):
    """One wire protocol as a codec (see the module docstring)."""

    name: ClassVar[str]

    def size(self, message: Any) -> int:
        """The message's size in bytes (the data plane runs large ones off the event loop)."""
        try:
            return len(message)
        except TypeError:
            return 0

    @abstractmethod
    def decode(self, served: ServedModel, message: Any, inbound: Inbound) -> Decoded:
        """The model input and params in ``message``.

        Raises:
            InputFormatError, UnsupportedMediaTypeError: the message cannot be read.
        """

    @abstractmethod
    def encode(self, served: ServedModel, decoded: Decoded, prediction: Prediction) -> Reply:
        """The reply to ``decoded``'s request, given the model's prediction."""

    @abstractmethod
    def error_body(self, message: str, code: str, extra: Mapping[str, Any] | None = None
                   ) -> bytes:
        """The protocol's error body for a message and an error code (MLflow's codes,
        e.g. ``BAD_REQUEST``; see :func:`satchel.serving.protocols.mlflow.error_code`)."""


def reply_of(prediction: Prediction, body: Any, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> Reply:
    """A :class:`Reply` carrying ``body`` and what the policy reported for ``prediction``."""
    return Reply(body, content_type, headers or {}, prediction.dropped_columns,
                 prediction.unknown_params, prediction.rows)
