"""The chat-completions face: the gateway's first API, passed through as it is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router.faces.base import Face, FaceRequest, Relay, Rendered
from router.sse import StreamRelay
from router.validate import check_chat


class ChatFace(Face):
    api = "chat"

    def parse(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        model, stream, max_tokens, n = check_chat(body)
        wants = False
        if stream:  # always learn the usage; drop the extra chunk later if the client did not ask
            options = body.get("stream_options") or {}
            wants = bool(options.get("include_usage"))
            body["stream_options"] = {**options, "include_usage": True}
        return FaceRequest("chat", body, model, stream, max_tokens, n, client_wants_usage=wants)

    def render(self, req: FaceRequest, data: Any, raw: bytes, native: bool) -> Rendered:
        usage = data.get("usage") if isinstance(data, dict) else None
        return Rendered(raw, usage if isinstance(usage, dict) else None)

    def relay(self, req: FaceRequest, native: bool) -> Relay:
        return StreamRelay(strip_usage_chunk=not req.client_wants_usage)
