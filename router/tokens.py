"""Token counting before the call, as the upstream will bill it.

For OpenAI models the count is exact for text chat requests: tiktoken with the family's encoding
plus the framing OpenAI bills (3 tokens per message, 1 more for a ``name``, 3 to prime the reply;
see the OpenAI cookbook "How to count tokens with tiktoken", whose API-measured figures are pinned
in tests/gateway/test_tokens.py). Approximations, documented:

* tools: the cookbook's function-definition formula (exact for its examples; other JSON-schema
  shapes, nested objects and arrays, are counted by their text and may be off by a few tokens);
* images: OpenAI bills by pixel size, which is not known without fetching the image: ``low``
  detail is 85 tokens (exact), ``high``/``auto`` counts 765 (a 1024x1024 image: 4 tiles);
* assistant ``tool_calls``: name and arguments text plus 3 framing tokens each;
* audio and file parts: their text only (transcripts are billed by the provider).

Other families: DeepSeek uses its own tokenizer, which litellm ships; for the rest an estimate
calibrated against tiktoken on the 10,000+ labelled prompts of the project's data set:
1.35 tokens per CJK character and 0.225 per other character (cl100k-like; median relative
error 13%). The seed article's rule of thumb (1 汉字 ≈ 2 tokens) fits GPT-3's p50k_base
(2.45 per character), but over-counts cl100k_base by 36% and o200k_base by 90%.

Where the count is an estimate, budgets reserve an upper bound instead
(:func:`chat_prompt_bound`): one token per UTF-8 byte of the counted text, the most any
byte-level BPE tokenizer (GPT, Claude, Llama 3, Qwen, DeepSeek, Mistral's Tekken) can make of
it, since each of its tokens covers at least one byte; on the project's data set the estimate
falls short of the real count by up to 2.9x (cl100k, o200k, DeepSeek, Claude 2's tokenizer),
the byte count never does (0.79 of it at most). See docs/budgets.md.

Nothing here touches the network: tiktoken is pointed at the BPE files litellm ships.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import orjson

if TYPE_CHECKING:
    from router.config import ModelConfig

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_LOW_DETAIL = 85
IMAGE_DEFAULT = 765
#: The estimate's rates (see the module docstring for how they were fitted).
EST_PER_CJK = 1.35
EST_PER_OTHER = 0.225
#: The pseudo-tokenizer of :func:`chat_prompt_bound`: one token per UTF-8 byte.
UTF8_BYTES = "utf8-bytes"
#: Tokens a chat template or the provider may add to a request beyond the framing counted here
#: (3 per message plus its role; Llama 3.1's date header and Qwen's default system prompt are
#: about 25 more).
TEMPLATE_ALLOWANCE = 32
#: Tokens a provider may add when a request has tools: Anthropic's tool-use system prompt is
#: 264-530 tokens depending on the model and ``tool_choice``.
TOOLS_ALLOWANCE = 600
#: Tokens an embedding model may add around each input (BOS/EOS, a prefix).
EMBEDDING_ALLOWANCE = 4

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

Counter = Callable[[str], int]


def _litellm_tokenizer_dir() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    return d if d.is_dir() else None


def configure_offline() -> None:
    """Point tiktoken at litellm's bundled BPE files and keep litellm off the network.

    Must run before tiktoken or litellm load anything; idempotent; respects values already set.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        d = _litellm_tokenizer_dir()
        if d is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = str(d)


def encoding_for(upstream_model: str, provider: str = "openai") -> str:
    """The tokenizer name for a model: a tiktoken encoding, ``deepseek`` or ``estimate``."""
    m = upstream_model.lower().rsplit("/", 1)[-1]
    if m.startswith(("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")):
        return "o200k_base"
    if m.startswith(("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")):
        return "cl100k_base"
    if m.startswith(("davinci", "text-davinci", "code-davinci")):
        return "p50k_base"
    if provider == "deepseek" or m.startswith("deepseek"):
        return "deepseek"
    return "estimate"


def estimate_tokens(text: str) -> int:
    """Calibrated estimate for tokenizers we do not have (see module docstring)."""
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    return int(cjk * EST_PER_CJK + (len(text) - cjk) * EST_PER_OTHER + 0.999)


def tokenizer_for(model: ModelConfig) -> str:
    """The tokenizer of a catalogue entry: its explicit ``tokenizer`` or its family's."""
    return model.tokenizer or encoding_for(model.upstream_model, model.provider)


Tokenizer = Union[str, "ModelConfig"]


def _name(tokenizer: Tokenizer) -> str:
    return tokenizer if isinstance(tokenizer, str) else tokenizer_for(tokenizer)


def utf8_bytes(text: str) -> int:
    """UTF-8 length of ``text`` (a lone surrogate counts 3 bytes, as U+FFFD would)."""
    return len(text.encode("utf-8", "surrogatepass"))


@cache
def text_counter(tokenizer: str) -> Counter:
    """A function counting the tokens of a string with ``tokenizer`` (loaded once)."""
    if tokenizer == "estimate":
        return estimate_tokens
    if tokenizer == UTF8_BYTES:
        return utf8_bytes
    if tokenizer == "deepseek":
        d = _litellm_tokenizer_dir()
        path = d / "deepseek_tokenizer.json" if d else None
        if path is None or not path.is_file():
            return estimate_tokens
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))

        def count_hf(text: str) -> int:
            return len(tok.encode(text, add_special_tokens=False).ids) if text else 0

        return count_hf
    configure_offline()
    core = _core_bpe(tokenizer)
    if core is None:  # tiktoken's internals changed: its public API (the vocabulary kept twice)
        import tiktoken

        encode = tiktoken.get_encoding(tokenizer).encode_ordinary

        def count_public(text: str) -> int:
            return len(encode(text)) if text else 0

        return count_public
    ordinary = core.encode_ordinary  # never raises on text that looks like a special token

    def count(text: str) -> int:
        if not text:
            return 0
        try:
            return len(ordinary(text))
        except UnicodeEncodeError:  # lone surrogates: as tiktoken's Encoding.encode_ordinary
            return len(ordinary(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))

    return count


def _core_bpe(name: str) -> Any:
    """tiktoken's Rust encoder for ``name``, without the rest of its ``Encoding``.

    ``tiktoken.get_encoding`` keeps the vocabulary twice: in the Rust ``CoreBPE`` that encodes,
    and as a Python dict of 200,000 bytes objects that only its decoding helpers use. Counting
    needs the first only: building it from the same constructor and letting the dict go keeps
    ~28 MB less resident per encoding (o200k_base: 76 -> 48 MB), with identical counts. None if
    tiktoken's internals are not as expected; an unknown name raises as ``get_encoding`` does.
    """
    import tiktoken

    try:
        from tiktoken import _tiktoken, registry  # type: ignore[attr-defined]

        registry._find_constructors()
        constructors = registry.ENCODING_CONSTRUCTORS
        if constructors is None or name not in constructors:
            tiktoken.get_encoding(name)  # raises tiktoken's own "Unknown encoding" error
            return None
        spec = constructors[name]()
        return _tiktoken.CoreBPE(spec["mergeable_ranks"], spec["special_tokens"], spec["pat_str"])
    except (ImportError, AttributeError, KeyError, TypeError):
        return None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def _content_tokens(content: Any, count: Counter) -> int:
    if isinstance(content, str):
        return count(content)
    if content is None:
        return 0
    if not isinstance(content, list):
        return count(_as_text(content))
    n = 0
    for part in content:
        if not isinstance(part, dict):
            n += count(_as_text(part))
            continue
        kind = part.get("type")
        if kind == "text" or (kind is None and "text" in part):
            n += count(_as_text(part.get("text")))
        elif kind == "image_url":
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, dict) else None
            n += IMAGE_LOW_DETAIL if detail == "low" else IMAGE_DEFAULT
        elif kind in ("input_audio", "file"):
            continue
        else:
            n += count(_as_text(part.get("text", "")))
    return n


#: Roles whose text repeats from request to request (an application's system prompt): their
#: counts are cached by text. Other turns are counted afresh.
_REPEATING_ROLES = frozenset({"system", "developer"})
#: Longest text whose count is cached, and how many are kept per tokenizer (~1 MB at most).
CACHE_TEXT_CHARS = 4096
CACHE_TEXTS = 128


@cache
def _repeating_counter(tokenizer: str) -> Counter:
    return lru_cache(maxsize=CACHE_TEXTS)(text_counter(tokenizer))


@lru_cache(maxsize=4096)  # bounded: names come from clients
def _short_count(tokenizer: str, text: str) -> int:
    """Roles and names: a handful of short strings, counted once each."""
    return text_counter(tokenizer)(text)


def _message_tokens(message: Any, count: Counter, tokenizer: str) -> int:
    if not isinstance(message, dict):
        return TOKENS_PER_MESSAGE + count(_as_text(message))
    n = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "content":
            if (type(value) is str and len(value) <= CACHE_TEXT_CHARS
                    and message.get("role") in _REPEATING_ROLES):
                n += _repeating_counter(tokenizer)(value)
            else:
                n += _content_tokens(value, count)
        elif key in ("role", "name") and isinstance(value, str):
            n += _short_count(tokenizer, value) if len(value) <= 64 else count(value)
            if key == "name":
                n += TOKENS_PER_NAME
        elif key == "tool_calls" and isinstance(value, list):
            for call in value:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    n += 3 + count(_as_text(fn.get("name"))) + count(_as_text(fn.get("arguments")))
        elif isinstance(value, str):
            n += count(value)
        elif value is not None:
            n += count(_as_text(value))
    return n


def _tools_tokens(tools: Iterable[Any], count: Counter, o200k: bool) -> int:
    """The cookbook's formula for function definitions (section 7 of the notebook)."""
    func_init = 7 if o200k else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    n = 0
    any_tool = False
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict):
            continue
        any_tool = True
        n += func_init
        desc = _as_text(fn.get("description", ""))
        n += count(_as_text(fn.get("name", "")) + ":" + desc.removesuffix("."))
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, dict) else None
        if isinstance(props, dict) and props:
            n += prop_init
            for key, spec in props.items():
                n += prop_key
                spec = spec if isinstance(spec, dict) else {}
                enum = spec.get("enum")
                if isinstance(enum, list):
                    n += enum_init
                    for item in enum:
                        n += enum_item + count(_as_text(item))
                p_desc = _as_text(spec.get("description", "")).removesuffix(".")
                n += count(f"{key}:{_as_text(spec.get('type', ''))}:{p_desc}")
    return n + func_end if any_tool else 0


def count_chat_tokens(body: Mapping[str, Any], tokenizer: Tokenizer) -> int:
    """Prompt tokens of a chat-completions request body, as the upstream will bill them.

    ``tokenizer`` is a tokenizer name (see :func:`encoding_for`) or a catalogue entry.
    """
    tokenizer = _name(tokenizer)
    count = text_counter(tokenizer)
    messages = body.get("messages")
    n = REPLY_PRIMING
    if isinstance(messages, list):
        for message in messages:
            n += _message_tokens(message, count, tokenizer)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        n += _tools_tokens(tools, count, tokenizer == "o200k_base")
    return n


def is_exact(tokenizer: Tokenizer) -> bool:
    """Does ``tokenizer`` count as the provider bills (tiktoken, DeepSeek's own), rather than
    estimate? (DeepSeek without its tokenizer file falls back to the estimate.)"""
    name = _name(tokenizer)
    if name in ("estimate", UTF8_BYTES):
        return False
    return name != "deepseek" or text_counter("deepseek") is not estimate_tokens


def chat_prompt_bound(body: Mapping[str, Any], tokenizer: Tokenizer) -> int | None:
    """The most prompt tokens the provider can bill for a chat request whose count is an
    estimate; None when ``tokenizer`` counts exactly.

    The request counted as :func:`count_chat_tokens` does, with one token per UTF-8 byte of
    text (a byte-level BPE's maximum), plus :data:`TEMPLATE_ALLOWANCE` and, with tools,
    :data:`TOOLS_ALLOWANCE`. Not covered: images (counted at OpenAI's figures) and templates
    adding more than the allowance; a settle above its reservation reports those.
    """
    if is_exact(tokenizer):
        return None
    n = count_chat_tokens(body, UTF8_BYTES) + TEMPLATE_ALLOWANCE
    tools = body.get("tools")
    return n + TOOLS_ALLOWANCE if isinstance(tools, list) and tools else n


def embedding_input_bound(value: Any, tokenizer: Tokenizer) -> int | None:
    """:func:`chat_prompt_bound` for an embeddings ``input``: None when the count is exact."""
    if is_exact(tokenizer):
        return None
    one = not isinstance(value, list) or all(isinstance(v, int) for v in value)
    inputs = 1 if one else len(value)
    return count_embedding_input(value, UTF8_BYTES) + EMBEDDING_ALLOWANCE * inputs


def count_text_tokens(text: str, tokenizer: Tokenizer) -> int:
    return text_counter(_name(tokenizer))(text)


def count_embedding_input(value: Any, tokenizer: Tokenizer) -> int:
    """Tokens of an embeddings ``input`` (a string, a list of strings, or token id lists)."""
    count = text_counter(_name(tokenizer))
    if isinstance(value, str):
        return count(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(
            len(v) if isinstance(v, list) else count(_as_text(v)) for v in value
        )
    return 0
