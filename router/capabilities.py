"""What each catalogue model can serve: which client APIs natively, and which inputs/outputs.

Resolved once at start-up, per model, in this order: ``models.<name>.apis`` and
``models.<name>.supports`` in config.yaml, then litellm's bundled model map (``supports_vision``,
``supports_audio_input``, ``supports_function_calling``, ``supports_response_schema``,
``supported_endpoints``, ``mode``), then defaults by provider. A model the map does not know
(a self-hosted vLLM, say) is assumed to accept every feature that config does not switch off:
the upstream's own error is more precise than a guess.

:func:`request_needs` reads what a chat-completions body needs (images, audio, tools, logprobs,
JSON-schema output); :func:`cannot_serve` says, per model, why it cannot serve a request, which
the pipeline merges into the ``unavailable`` mapping the policy engine already passes over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from router.config import DEFAULT_API_BASES, Api, Config, ModelConfig

#: Features a request may need, as config.yaml's ``supports`` keys name them.
FEATURES = ("vision", "audio", "tools", "logprobs", "json_schema")
_WORDS = {"vision": "images", "audio": "audio input", "tools": "tools",
          "logprobs": "logprobs", "json_schema": "JSON-schema output"}
_MAP_FLAGS = {"vision": "supports_vision", "audio": "supports_audio_input",
              "tools": "supports_function_calling", "json_schema": "supports_response_schema"}
_ENDPOINTS: Mapping[str, Api] = {"/v1/chat/completions": "chat", "/v1/responses": "responses",
                                 "/v1/completions": "completions", "/v1/messages": "messages"}
#: Providers without log probabilities at all.
_NO_LOGPROBS = frozenset({"anthropic", "bedrock", "vertex_ai", "gemini"})
API_NAMES: Mapping[str, str] = {"chat": "Chat Completions", "responses": "Responses",
                                "messages": "Anthropic Messages", "completions": "Completions"}


@dataclass(frozen=True, slots=True)
class Serving:
    """One model's APIs (served natively) and features; ``source`` says where they came from."""

    apis: frozenset[str]
    supports: Mapping[str, bool]
    source: str

    def json(self) -> dict[str, Any]:
        return {"apis": sorted(self.apis), "supports": dict(self.supports),
                "capabilities_source": self.source}


def default_apis(cfg: ModelConfig, entry: Mapping[str, Any] | None) -> frozenset[str]:
    """Native APIs when config does not list them. Only the HTTP pass-through serves APIs other
    than chat natively: a model reached through litellm serves chat (and Anthropic's, Messages
    straight to Anthropic), whatever litellm's map lists for its own proxy."""
    if cfg.provider == "anthropic":
        return frozenset({"messages", "chat"})  # chat through litellm's translation
    if cfg.api_path != "openai":
        return frozenset({"chat"})
    apis: set[str] = set()
    if entry is not None:
        listed = entry.get("supported_endpoints")
        if isinstance(listed, list):
            apis = {_ENDPOINTS[e] for e in listed if e in _ENDPOINTS}
        mode = entry.get("mode")
        if not apis and mode == "completion":
            return frozenset({"completions"})
        if not apis and mode == "responses":
            return frozenset({"responses"})
    if not apis:
        apis = {"chat"}
    if cfg.provider == "openai" and cfg.mode == "chat" \
            and cfg.api_base in (None, DEFAULT_API_BASES["openai"]):
        apis.add("responses")  # OpenAI serves the Responses API for every chat model
    return frozenset(apis)


def resolve(cfg: ModelConfig, entry: Mapping[str, Any] | None) -> Serving:
    apis = frozenset(cfg.apis) if cfg.apis is not None else default_apis(cfg, entry)
    supports: dict[str, bool] = {}
    sources = set()
    overrides = cfg.supports
    for feature in FEATURES:
        value = getattr(overrides, feature)
        if value is not None:
            supports[feature] = value
            sources.add("config")
        elif feature == "logprobs":
            supports[feature] = cfg.provider not in _NO_LOGPROBS
        elif entry is not None:
            supports[feature] = entry.get(_MAP_FLAGS[feature]) is True
            sources.add("litellm")
        else:
            supports[feature] = True
    source = "+".join(sorted(sources)) or "assumed"
    return Serving(apis, supports, source)


def resolve_all(config: Config) -> dict[str, Serving]:
    """Every catalogue model's :class:`Serving` (reads litellm's map once, offline)."""
    from router.costs.pricing import litellm_entry, load_price_map

    needs_map = any(m.apis is None or any(getattr(m.supports, f) is None for f in FEATURES)
                    for m in config.models.values())
    price_map = load_price_map()[0] if needs_map else {}
    out = {}
    for name, cfg in config.models.items():
        found = litellm_entry(cfg, price_map) if price_map else None
        out[name] = resolve(cfg, found[1] if found is not None else None)
    return out


def _parts(messages: Any) -> Iterable[Any]:
    if not isinstance(messages, list):
        return
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from content


def request_needs(chat: Mapping[str, Any]) -> tuple[str, ...]:
    """The features a chat-completions body needs (a subset of :data:`FEATURES`)."""
    needs = []
    image = audio = False
    for part in _parts(chat.get("messages")):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url":
            image = True
        elif kind == "input_audio":
            audio = True
    modalities = chat.get("modalities")
    if chat.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        audio = True
    if image:
        needs.append("vision")
    if audio:
        needs.append("audio")
    if chat.get("tools") or chat.get("functions"):
        needs.append("tools")
    if chat.get("logprobs") or chat.get("top_logprobs"):
        needs.append("logprobs")
    fmt = chat.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        needs.append("json_schema")
    return tuple(needs)


def lacks(serving: Serving, needs: Iterable[str]) -> str | None:
    """Why the model cannot take a request needing ``needs`` (None: it can)."""
    missing = [f for f in needs if not serving.supports.get(f, True)]
    if not missing:
        return None
    what = ", ".join(_WORDS[f] for f in missing)
    keys = ", ".join(f"supports.{f}" for f in missing)
    return f"does not support {what} (catalogue: {serving.source}; config key {keys})"
