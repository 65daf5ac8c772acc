"""Request bodies on the wire, and the one kind the fast JSON codec refuses: lone surrogates.

JavaScript strings are UTF-16, and one cut in the middle of an emoji ends in half of a surrogate
pair; ``JSON.stringify`` writes it as an escape such as ``"\\ud83d"``, and the official npm SDK
sends such bodies. That is valid JSON (RFC 8259 allows any ``\\uXXXX``) but not valid Unicode,
and orjson refuses it. :func:`parse_lone_surrogates` reads such a body with the standard library
and gives the gateway a :class:`SurrogateBody`: the same request with every lone surrogate
replaced by U+FFFD, which is what the gateway counts and classifies; :func:`encode_body` puts the
original strings back when the body is forwarded, so the upstream receives what the client sent
(the escapes as ``\\udXXX``), with the gateway's own changes (``model``, ``stream_options``, a
capped ``max_tokens``) applied.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: A ``\uXXXX`` escape of a surrogate (D800-DFFF) in raw JSON bytes.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class SurrogateBody(dict[str, Any]):
    """A request body whose strings had lone surrogates, replaced here by U+FFFD.

    ``originals`` maps each top-level key whose value (or the key itself) held one to the key
    and value as received, and to the cleaned value this dict held at parse time: a value the
    gateway has not replaced since is forwarded as received.
    """

    originals: dict[str, tuple[str, Any, Any]]

    def wire(self) -> dict[str, Any]:
        """The body to forward: the original strings, with the gateway's changes."""
        out: dict[str, Any] = {}
        for key, value in self.items():
            original = self.originals.get(key)
            if original is not None and original[2] is value:
                out[original[0]] = original[1]
            else:
                out[key] = value
        return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text} is out of range")
    return value


def _clean(value: Any) -> Any:
    """``value`` with U+FFFD for each lone surrogate; the same object where there is none."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, list):
        items = [_clean(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        pairs = [(_clean(k), _clean(v), k, v) for k, v in value.items()]
        if all(ck is k and cv is v for ck, cv, k, v in pairs):
            return value
        return {ck: cv for ck, cv, _, _ in pairs}
    return value


def parse_lone_surrogates(raw: bytes) -> Any:
    """``raw`` parsed as orjson would, except that lone surrogate escapes are accepted: a
    :class:`SurrogateBody` for an object. Raises ``ValueError`` where orjson would refuse it
    for another reason (bad UTF-8, NaN, a number out of range, nesting too deep, ...)."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant,
                           parse_float=_finite)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if not isinstance(value, dict):
        return _clean(value)
    body = SurrogateBody()
    body.originals = {}
    for key, item in value.items():
        clean_key, clean_item = _clean(key), _clean(item)
        body[clean_key] = clean_item
        if clean_key is not key or clean_item is not item:
            body.originals[clean_key] = (key, item, clean_item)
    return body


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def encode_body(body: dict[str, Any]) -> bytes:
    """The JSON bytes to send upstream for ``body``."""
    if not isinstance(body, SurrogateBody):
        return orjson.dumps(body)
    text = json.dumps(body.wire(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # A lone surrogate can only stand inside a JSON string: escaped, it is what the client sent.
    return _SURROGATE.sub(_escape, text).encode("utf-8")
