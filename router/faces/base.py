"""What every face gives the pipeline: a parsed request, its upstream legs, its answers.

A face turns one client API's wire format into a :class:`FaceRequest`: the chat-completions
view the pipeline counts, classifies, prices and routes (and sends upstream when the chosen model
does not speak the client's API), plus the client's own body, passed through with only ``model``
rewritten when it does. After the call the face renders the answer, or relays its stream, in the
client's format, and reads the usage into the chat-completions shape the ledger is priced from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.errors import GatewayError
from router.upstream.base import Endpoint, Target
from router.upstream.dispatch import Leg, Plan


@dataclass(slots=True)
class FaceRequest:
    """A client request, parsed by its face."""

    #: ``chat``, ``responses``, ``messages`` or ``completions`` (ledger ``api``, metrics).
    api: str
    #: The chat-completions view: counted, classified, routed; sent when translating.
    chat: dict[str, Any]
    model: str
    stream: bool
    max_tokens: int | None
    n: int = 1
    #: The client's own body, for an upstream serving this API natively (None: chat is native).
    native: dict[str, Any] | None = None
    #: What the chat view cannot carry: only an upstream serving the API natively may take the
    #: request (each a short phrase for messages, e.g. "'thinking'").
    native_only: tuple[str, ...] = ()
    #: Responses: the stored response this one continues (pins the provider that holds it).
    previous_response_id: str | None = None
    #: Responses: whether the upstream is asked to store the response (OpenAI's default: yes).
    store: bool = False
    #: Headers for a native upstream (``anthropic-version``, ``anthropic-beta``).
    headers: dict[str, str] = field(default_factory=dict)
    #: Chat streams: whether the client asked for the usage chunk.
    client_wants_usage: bool = False


@dataclass(frozen=True, slots=True)
class Rendered:
    """A non-streamed answer in the client's format."""

    body: bytes
    #: Usage in the chat-completions shape (``prompt_tokens``, ``completion_tokens``, details),
    #: or None when the upstream sent none.
    usage: dict[str, Any] | None
    #: The id of the answer (Responses: to remember where it is stored).
    response_id: str | None = None


class Relay(Protocol):
    """Relays one upstream stream to the client in the client's format (see router/sse.py for
    the chat-completions one). The terminal event is held back (``holding``) until the gateway
    has recorded the request, then :meth:`release` sends it."""

    @property
    def usage(self) -> dict[str, Any] | None: ...

    @property
    def done(self) -> bool: ...

    @property
    def holding(self) -> bool: ...

    @property
    def response_id(self) -> str | None: ...

    @property
    def upstream_failed(self) -> bool:
        """The upstream ended the stream with an error event of its own (relayed as is)."""
        ...

    def feed(self, data: bytes) -> bytes: ...

    def release(self) -> bytes: ...

    def generated_text(self) -> Iterator[str]: ...

    def error_event(self, exc: GatewayError) -> bytes: ...


class Face:
    """One client API. Subclasses parse its requests and render its answers; the defaults here
    are what every face shares (the chat-completions view as the upstream body of models that
    do not speak the API, OpenAI-shaped errors)."""

    #: The API's name (``FaceRequest.api``).
    api: str = "chat"
    #: The endpoint of an upstream that speaks the API natively.
    endpoint: Endpoint = "chat/completions"

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        raise NotImplementedError

    def cap_output(self, req: FaceRequest, cap: int) -> None:
        """Enforce ``cap`` output tokens (a budget near its end admitted the request on it)."""
        chat = req.chat
        chat["max_completion_tokens" if "max_completion_tokens" in chat else "max_tokens"] = cap

    def native_leg(self, req: FaceRequest, target: Target) -> Leg:
        """The leg for a model that speaks this API: the client's body, ``model`` rewritten."""
        assert req.native is not None
        return Leg(self.endpoint, req.native, True)

    def plan(self, state: Any, req: FaceRequest) -> Plan | Leg:
        """Per model of the chain: the client's body where it speaks this API natively, else
        the chat-completions translation."""
        serving = state.serving
        if req.native is None:
            return Leg("chat/completions", req.chat, True)
        # a translation's metadata is the gateway's to read (metadata.router_task), not sent
        chat_leg = Leg("chat/completions",
                       {k: v for k, v in req.chat.items() if k != "metadata"}, False)

        def plan(target: Target) -> Leg:
            if self.api in serving[target.name].apis:
                return self.native_leg(req, target)
            return chat_leg

        return plan

    def render(self, req: FaceRequest, data: Any, raw: bytes, native: bool) -> Rendered:
        raise NotImplementedError

    def relay(self, req: FaceRequest, native: bool) -> Relay:
        raise NotImplementedError

    async def pin(self, state: Any, req: FaceRequest, caller: Any) -> Mapping[str, str] | None:
        """Models that cannot take this request because of state held upstream (model -> why);
        None: any may."""
        return None

    async def completed(self, state: Any, req: FaceRequest, out: Any,
                        response_id: str | None) -> None:
        """Called once the request is recorded (before the client sees its last event)."""
        return None

    def error_body(self, exc: GatewayError) -> bytes:
        return exc.body()

    def error_headers(self, exc: GatewayError) -> dict[str, str]:
        return dict(exc.headers)
