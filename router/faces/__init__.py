"""Faces: each client API the gateway speaks, around one pipeline (docs/apis.md).

Chat Completions, Responses, Anthropic Messages and legacy Completions each parse their wire
format into the request :mod:`router.pipeline` handles and render its answer (and stream) back.
The translations are pure functions (``*_wire`` modules), tested round trip.
"""

from router.faces.base import Face
from router.faces.chat import ChatFace
from router.faces.completions import CompletionsFace
from router.faces.messages import CountTokensFace, MessagesFace
from router.faces.responses import ResponsesFace

CHAT = ChatFace()
RESPONSES = ResponsesFace()
MESSAGES = MessagesFace()
COUNT_TOKENS = CountTokensFace()
COMPLETIONS = CompletionsFace()

__all__ = ["CHAT", "COMPLETIONS", "COUNT_TOKENS", "MESSAGES", "RESPONSES", "Face"]
