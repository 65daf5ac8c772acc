"""``config.yaml``: where things are. Parsed strictly, then cross-checked.

Phase one (:func:`parse_config`) validates the file against the pydantic models below, which
forbid unknown keys; phase two (:func:`load_config`) checks references between sections
(fallbacks name existing models, the default model is a chat model, ...). Every error names the
file, the line and the key. What to *do* with a request (capability bars, budgets, permissions)
lives in ``policies/``, not here.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from router.configpath import find_config, rebase_sqlite_url, store_base
from router.yamlfile import Document, DocumentError, load_file, parse_text, validate

#: Providers that speak OpenAI's chat-completions protocol: served by the fast pass-through path.
OPENAI_COMPATIBLE_PROVIDERS = frozenset(
    {
        "openai",
        "deepseek",
        "groq",
        "together",
        "mistral",
        "fireworks",
        "openrouter",
        "perplexity",
        "xai",
        "moonshot",
        "dashscope",
        "zhipu",
        "vllm",
        "sglang",
        "ollama",
        "lmstudio",
        "openai_compatible",
    }
)

#: Default API bases for OpenAI-compatible providers, used when ``api_base`` is omitted.
DEFAULT_API_BASES: Mapping[str, str] = {
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together": "https://api.together.xyz/v1",
    "mistral": "https://api.mistral.ai/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "perplexity": "https://api.perplexity.ai",
    "xai": "https://api.x.ai/v1",
    "moonshot": "https://api.moonshot.cn/v1",
    "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "zhipu": "https://open.bigmodel.cn/api/paas/v4",
    "ollama": "http://127.0.0.1:11434/v1",
    "lmstudio": "http://127.0.0.1:1234/v1",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_SIZE = re.compile(r"^\s*(?:(\d+)\s*[xX×]\s*)?(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([KMBTkmbt]?)\s*$")
_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}

#: The documented development key of the default config: accepted only on a loopback address.
DEV_KEY = "sk-router-dev"
DEV_KEY_SHA256 = hashlib.sha256(DEV_KEY.encode()).hexdigest()


def parse_count(value: str | int | float) -> float:
    """Parse a parameter or token count: ``175B``, ``8x222B``, ``1.8T``, ``175e9``, ``500B``.

    Raises ValueError with a one-line message on anything else, or on a count <= 0.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a count: {value!r}")
    if isinstance(value, int | float):
        n = float(value)
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(
                f"cannot parse {value!r}: use e.g. 175B, 8x222B, 1.8T, 70e9 or 500000"
            )
        mult = int(m.group(1)) if m.group(1) else 1
        n = mult * float(m.group(2)) * _SUFFIX[m.group(3).upper()]
    if not n > 0 or n != n or n == float("inf"):
        raise ValueError(f"must be a positive number, got {value!r}")
    return n


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CircuitBreakerConfig(_Strict):
    """Passive health per model (router/upstream/health.py): failed attempts open a circuit."""

    #: Consecutive failed attempts on a model (no HTTP answer: refused, reset, timed out; or a
    #: 5xx) that open its circuit: routes and fallbacks pass over it. 0 turns circuits off.
    failure_threshold: int = Field(5, ge=0, le=1000)
    #: How long a circuit stays open before one request may probe the model (half-open).
    cooldown_s: float = Field(30.0, gt=0, le=86400)
    #: Each failed probe doubles the cool-down, up to this.
    max_cooldown_s: float = Field(300.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _ordered(self) -> CircuitBreakerConfig:
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError("max_cooldown_s must be at least cooldown_s")
        return self


class MetricsAuthConfig(_Strict):
    """``GET /metrics`` needs ``Authorization: Bearer <token>`` (it shows spend per key alias
    and team); Prometheus sends it (``authorization`` in a scrape config, or a ServiceMonitor's
    ``authorization``)."""

    #: Environment variable holding the token. Unset when the gateway starts: every scrape is
    #: refused (401) and the log says why.
    token_env: str = Field("ROUTER_METRICS_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class CorsConfig(_Strict):
    """Cross-origin requests from browser apps (``server.cors``): which origins may call the
    gateway. The preflight (``OPTIONS``) is answered for them; other origins get no CORS
    headers, so browsers refuse their reads."""

    #: Exact origins (``https://app.example.com``), or ``"*"`` for any.
    allow_origins: tuple[str, ...] = Field(min_length=1)
    #: Request headers a browser may send besides the CORS-safelisted ones.
    allow_headers: tuple[str, ...] = (
        "authorization", "content-type", "x-api-key", "api-key", "anthropic-version",
        "anthropic-beta", "x-router-task", "x-request-id", "openai-organization",
        "openai-project", "x-stainless-arch", "x-stainless-lang", "x-stainless-os",
        "x-stainless-package-version", "x-stainless-retry-count", "x-stainless-runtime",
        "x-stainless-runtime-version", "x-stainless-timeout", "x-stainless-helper-method",
        "anthropic-dangerous-direct-browser-access",
    )
    #: Response headers a browser app may read (the gateway's own ``x-router-*`` and ids).
    expose_headers: tuple[str, ...] = (
        "x-request-id", "request-id", "x-router-model", "x-router-route", "x-router-task",
        "x-router-task-confidence", "x-router-prompt-tokens", "x-router-cost-estimate-usd",
        "x-router-cost-usd", "x-router-attempts", "x-router-fallback-from", "retry-after",
    )
    #: Send ``Access-Control-Allow-Credentials: true`` (not with ``"*"``).
    allow_credentials: bool = False
    #: How long a browser may cache a preflight answer.
    max_age_s: int = Field(600, ge=0, le=86400)

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for origin in v:
            if origin != "*" and (not origin.startswith(("http://", "https://"))
                                  or origin.endswith("/") or origin.count("/") != 2):
                raise ValueError(f"{origin!r} is not an origin: use scheme://host[:port], "
                                 "without a path, or \"*\"")
        return tuple(o.lower() for o in v)

    @model_validator(mode="after")
    def _credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("allow_credentials cannot be used with allow_origins \"*\"")
        return self


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False
    #: Retries back off exponentially from this base (with jitter), honouring Retry-After up to
    #: ``retry_backoff_max_s``.
    retry_backoff_base_s: float = Field(0.25, ge=0)
    retry_backoff_max_s: float = Field(8.0, ge=0)
    #: Trust an incoming ``x-request-id`` header (e.g. from a load balancer) instead of minting one.
    trust_request_id: bool = True
    #: A request body must have arrived in full this many seconds after the request's headers;
    #: else 408 and the connection is closed (router/slow_bodies.py).
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    #: Requests of one client address that may be waiting for their body at once (per worker
    #: process); more are refused at once with 429. 0: no cap.
    max_pending_bodies_per_client: int = Field(16, ge=0)
    #: Passive health of each model: when to stop calling it for a while.
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    #: Require a bearer token on ``GET /metrics`` (null: open, fine on a loopback address).
    metrics_auth: MetricsAuthConfig | None = None
    #: Serve the OpenAPI schema and its viewers (/openapi.json, /docs, /redoc). Off: they list
    #: the admin API to anyone who asks.
    api_docs: bool = False
    #: Cross-origin requests from browsers (null: off, no CORS headers at all).
    cors: CorsConfig | None = None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"45s"``, ``"30m"``, ``"36h"``, ``"7d"`` or ``"2w"`` (>= 0)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"cannot parse {value!r}: use seconds or e.g. 30m, 36h, 7d, 2w")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"must be a duration >= 0, got {value!r}")
    return seconds


class LedgerConfig(_Strict):
    """``store.ledger``: how long ledger rows stay in the hot store (the SQLite file, the Redis
    Stream) and where they go before they are trimmed (docs/budgets.md, "Ledger retention")."""

    #: Exported rows younger than this stay in the hot store (reports over them need nothing
    #: else); older ones are trimmed once the export target has them. A duration (``36h``,
    #: ``7d``) or seconds. Default: 35 days on SQLite (this month stays local), 1 day on Redis
    #: (~155 bytes a request of Redis memory).
    retain_hot: Annotated[float | None, BeforeValidator(
        lambda v: None if v is None else parse_duration(v))] = None
    #: Where rows go: ``files`` (append-only JSONL, one directory per UTC day), ``postgres``
    #: (one table), or ``none`` (rows older than retain_hot are deleted, not kept anywhere).
    export: Literal["files", "postgres", "none"] = "files"
    #: postgres: ``postgresql://user:${PASSWORD}@host:5432/db``. files: a directory (default:
    #: ``ledger`` beside the SQLite file; ``./router-data/ledger`` for Redis).
    url: str | None = None
    #: PostgreSQL table (created if missing), optionally schema-qualified.
    table: str = Field("router_ledger",
                       pattern=r"^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$")
    #: Run the exporter inside the gateway (one replica of a fleet is elected to). Off: run
    #: ``router ledger export`` yourself (a CronJob, a sidecar); the gateway still reads the
    #: target for reports.
    in_gateway: bool = True
    #: How often the exporter looks for new rows (and trims).
    interval_s: float = Field(2.0, gt=0, le=3600)
    #: Rows per export transaction.
    batch: int = Field(1000, ge=1, le=100_000)

    @field_validator("url")
    @classmethod
    def _target(cls, v: str | None, info: ValidationInfo) -> str | None:
        export = info.data.get("export")  # declared above: validated first
        if export == "postgres" and v is not None and not v.startswith(
                ("postgresql://", "postgres://")):
            raise ValueError("export: postgres takes a postgresql://user:password@host/db url")
        if export == "files" and v is not None and "://" in v and not v.startswith("file://"):
            raise ValueError("export: files takes a directory")
        if export == "none" and v is not None:
            raise ValueError("export: none takes no url")
        return v

    @model_validator(mode="after")
    def _url_given(self) -> LedgerConfig:
        if self.export == "postgres" and self.url is None:
            raise ValueError("export: postgres needs url: postgresql://user:password@host/db")
        return self


class StoreConfig(_Strict):
    url: str = "sqlite:///./router-data/router.db"
    #: IANA zone the daily/weekly/monthly budget windows follow.
    timezone: str = "UTC"
    #: Redis unreachable: ``closed`` refuses requests (503), ``open`` serves them and reconciles
    #: the spend when Redis returns.
    fail_mode: Literal["closed", "open"] = "closed"
    #: An unsettled reservation (a crashed replica) is freed after this long; keep it above the
    #: longest request.
    reservation_ttl_s: float = Field(1800.0, gt=0)
    #: Always reserve the worst case (prompt + max_tokens or the model's output limit). Off: a
    #: request without max_tokens that does not fit reserves its expected output instead and is
    #: capped at it (see docs/budgets.md).
    strict_reservations: bool = False
    #: Redis only: fraction of a budget's free money a replica may lease, to reserve against in
    #: memory instead of one Redis round trip per request (0: off). Never passes a limit; the
    #: price is money stranded in another replica's idle lease near the limit (docs/budgets.md).
    lease_fraction: float = Field(0.05, ge=0, le=0.5)
    #: Redis leasing: how long a replica's lease outlives its last renewal (renewed every third
    #: of it). A replica that dies leaves its leased money held this long at most; a replica cut
    #: off from Redis longer than this loses the holds of its requests in flight (they are still
    #: charged when they settle). Default: the smaller of 30 s and ``reservation_ttl_s``, which
    #: it may not exceed.
    lease_ttl_s: float | None = Field(None, ge=1)
    #: Redis fail_mode open: where the outage journal lives (default: next to nothing, memory).
    journal_path: str | None = None
    #: Ledger retention and export (see LedgerConfig).
    ledger: LedgerConfig = LedgerConfig()

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite://") or v.startswith(("redis://", "rediss://", "unix://"))):
            raise ValueError("store url must start with sqlite:///, redis://, rediss:// or unix://")
        return v

    @field_validator("lease_ttl_s")
    @classmethod
    def _lease_within_reservation(cls, v: float | None, info: ValidationInfo) -> float | None:
        reservation = info.data.get("reservation_ttl_s")  # declared above: validated first
        if v is not None and reservation is not None and v > reservation:
            raise ValueError(
                f"{v:g} s exceeds reservation_ttl_s ({reservation:g} s): a dead replica's "
                "leased money would outlive its reservations"
            )
        return v


class KeyConfig(_Strict):
    """A gateway key. The secret itself is never in the file: its SHA-256, or an env var."""

    alias: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    user: str = "default"
    team: str = "default"
    models: tuple[str, ...] | None = None  # allowed models (None: all)
    #: The key's own budget per period, in USD, e.g. {daily: 5, monthly: 50}.
    budget_usd: dict[Literal["daily", "weekly", "monthly", "total"], float] = Field(
        default_factory=dict
    )
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> KeyConfig:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_sha256 or key_env")
        return self


class AuthConfig(_Strict):
    #: Refuse requests without a known key (401). Turn off only behind another authenticator.
    require_key: bool = True
    keys: tuple[KeyConfig, ...] = ()


class AdminConfig(_Strict):
    #: Environment variable holding the admin key (unset: every /admin request gets 401).
    key_env: str = Field("ROUTER_ADMIN_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: How often each replica reloads admin-created keys: a revocation applies within this.
    refresh_s: float = Field(2.0, gt=0, le=60)


class GpuConfig(_Strict):
    """A GPU for the article's formulas: dense BF16 throughput (TFLOP/s) and rent ($/GPU-hour).

    Overriding a built-in GPU (see router/costs/gpus.py) may give either field alone; a new GPU
    needs both.
    """

    tflops: float | None = Field(None, gt=0, allow_inf_nan=False)
    usd_per_hour: float | None = Field(None, gt=0, allow_inf_nan=False)
    note: str | None = None


class PriceConfig(_Strict):
    """List price in US dollars per million tokens (stored as integer micro-dollars)."""

    input_per_1m: float = Field(ge=0, allow_inf_nan=False)
    output_per_1m: float = Field(0.0, ge=0, allow_inf_nan=False)
    #: Cache hits (OpenAI ``cached_tokens``, Anthropic cache reads, DeepSeek cache hits).
    cached_input_per_1m: float | None = Field(None, ge=0, allow_inf_nan=False)
    #: Cache writes (Anthropic ``cache_creation_input_tokens``); default: the input price.
    cache_write_per_1m: float | None = Field(None, ge=0, allow_inf_nan=False)


class UtilisationConfig(_Strict):
    """Separate model-FLOP utilisation for prefill (input tokens) and decode (output tokens)."""

    prefill: float = Field(gt=0, le=1)
    decode: float = Field(gt=0, le=1)


def _utilisation(value: Any) -> float | UtilisationConfig:
    """A number in (0, 1], or a {prefill, decode} mapping of two such numbers (one clean error)."""

    def fraction(v: Any) -> float | None:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        return float(v) if 0 < v <= 1 else None

    if isinstance(value, UtilisationConfig):
        return value
    if isinstance(value, Mapping) and set(value) == {"prefill", "decode"}:
        prefill, decode = fraction(value["prefill"]), fraction(value["decode"])
        if prefill is not None and decode is not None:
            return UtilisationConfig(prefill=prefill, decode=decode)
    else:
        number = fraction(value)
        if number is not None:
            return number
    raise ValueError("utilisation must be a number in (0, 1] or {prefill: x, decode: y}")


class TimeoutConfig(_Strict):
    connect: float = Field(5.0, gt=0)
    #: Longest silence between two bytes from upstream (first byte included).
    read: float = Field(120.0, gt=0)
    #: Whole request, streaming included.
    total: float = Field(600.0, gt=0)


#: The client APIs an upstream can serve natively (see docs/apis.md).
Api = Literal["chat", "responses", "messages", "completions"]


class SupportsConfig(_Strict):
    """What a model accepts, overriding litellm's model map (``supports_vision``, ...). A model
    the map does not know is assumed to accept everything not set here."""

    vision: bool | None = None
    audio: bool | None = None
    tools: bool | None = None
    logprobs: bool | None = None
    json_schema: bool | None = None


class ModelConfig(_Strict):
    provider: str
    upstream_model: str
    mode: Literal["chat", "embedding"] = "chat"
    api_base: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: Force the upstream path; default: "openai" for OpenAI-compatible providers, else "litellm".
    api: Literal["openai", "litellm"] | None = None
    context_window: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    #: tiktoken encoding or ``estimate``; default: chosen from the model family.
    tokenizer: str | None = None
    price: PriceConfig | None = None
    #: Parameter count for the article's formula (self-hosted models), e.g. "8B", "8x7B".
    params: str | None = None
    #: Active parameters of a mixture-of-experts model (the formula prices these per token).
    active_params: str | None = None
    gpu: str | None = None
    #: amortised: the GPU time the formula gives; marginal: zero while reserved GPUs sit idle.
    pricing: Literal["amortised", "marginal"] = "amortised"
    #: Model-FLOP utilisation for the formula: one number, or {prefill: x, decode: y}.
    utilisation: Annotated[float | UtilisationConfig, BeforeValidator(_utilisation)] = 1.0
    timeout: TimeoutConfig = TimeoutConfig()
    max_retries: int = Field(2, ge=0, le=10)
    fallbacks: tuple[str, ...] = ()
    extra_headers: dict[str, str] = Field(default_factory=dict)
    #: The client APIs this upstream serves natively (its requests are passed through with only
    #: ``model`` rewritten); other APIs reach it translated to chat completions. Default: from
    #: the provider and litellm's map (docs/apis.md).
    apis: tuple[Api, ...] | None = Field(None, min_length=1)
    #: Input and output features the model supports (default: litellm's map).
    supports: SupportsConfig = SupportsConfig()

    @field_validator("params", "active_params")
    @classmethod
    def _count(cls, v: str | None) -> str | None:
        if v is not None:
            parse_count(v)
        return v

    @field_validator("api_base")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("api_base must be an http:// or https:// URL")
        return v.rstrip("/") if v else v

    @property
    def api_path(self) -> Literal["openai", "litellm"]:
        if self.api is not None:
            return self.api
        return "openai" if self.provider in OPENAI_COMPATIBLE_PROVIDERS else "litellm"


class RoutingConfig(_Strict):
    #: What ``auto`` resolves to when no policy is loaded.
    default_model: str | None = None
    default_embedding_model: str | None = None


class CostsConfig(_Strict):
    #: Completion tokens assumed before the call when a request gives no max_tokens, by task
    #: (``reasoning``, ``expression``, ... or ``default``); see router/costs/estimate.py.
    expected_output_tokens: dict[str, Annotated[int, Field(gt=0, le=10_000_000)]] = Field(
        default_factory=dict
    )


class Config(_Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    auth: AuthConfig = AuthConfig()
    admin: AdminConfig = AdminConfig()
    routing: RoutingConfig = RoutingConfig()
    costs: CostsConfig = CostsConfig()
    gpus: dict[str, GpuConfig] = Field(default_factory=dict)
    #: The routing policy: a YAML file or a directory of them, relative to this file's
    #: directory; null serves ``auto`` with ``routing.default_model`` and no policy.
    policy: str | None = "policies/default.yaml"
    models: dict[Annotated[str, Field(pattern=_NAME.pattern)], ModelConfig]
    #: Where this config came from (set by the loader).
    source: str = "<memory>"

    def chat_models(self) -> list[str]:
        return [n for n, m in self.models.items() if m.mode == "chat"]


class ConfigError(DocumentError):
    """config.yaml is malformed, fails its schema, or its sections disagree."""


def _cross_check(doc: Document, cfg: Config) -> list[str]:
    problems: list[str] = _check_gpus(doc, cfg)
    names = set(cfg.models)
    known_gpus = _known_gpus(cfg)
    for name, m in cfg.models.items():
        loc: tuple[str | int, ...] = ("models", name)
        for i, fb in enumerate(m.fallbacks):
            if fb not in names:
                problems.append(doc.error((*loc, "fallbacks", i), f"unknown model {fb!r}"))
            elif fb == name:
                problems.append(doc.error((*loc, "fallbacks", i), "cannot fall back to itself"))
            elif cfg.models[fb].mode != m.mode:
                problems.append(
                    doc.error((*loc, "fallbacks", i), f"{fb!r} is a {cfg.models[fb].mode} model")
                )
        if m.api_path == "openai" and m.api_base is None and m.provider not in DEFAULT_API_BASES:
            problems.append(doc.error(loc, f"provider {m.provider!r} needs an api_base"))
        if m.gpu is not None and _gpu_key(m.gpu) not in known_gpus:
            known = ", ".join(sorted(known_gpus))
            problems.append(doc.error((*loc, "gpu"), f"unknown GPU {m.gpu!r} (known: {known})"))
        if _virtual(name):
            problems.append(doc.error(loc, f"{name!r} is reserved for routing"))
        if m.active_params is not None and m.params is None:
            problems.append(doc.error((*loc, "active_params"), "needs params as well"))
        for i, api in enumerate(m.apis or ()):
            if api == "chat" or m.api_path == "openai" or (api == "messages"
                                                           and m.provider == "anthropic"):
                continue
            problems.append(doc.error((*loc, "apis", i), f"{api!r} is served natively only over "
                                      "the HTTP pass-through (api: openai, with an api_base)"))
    for field, mode in (("default_model", "chat"), ("default_embedding_model", "embedding")):
        value = getattr(cfg.routing, field)
        if value is None:
            continue
        if value not in names:
            problems.append(doc.error(("routing", field), f"unknown model {value!r}"))
        elif cfg.models[value].mode != mode:
            problems.append(doc.error(("routing", field), f"{value!r} is not a {mode} model"))
    seen: dict[str, str] = {}
    for i, key in enumerate(cfg.auth.keys):
        if key.alias in seen:
            problems.append(
                doc.error(("auth", "keys", i, "alias"), f"duplicate alias {key.alias!r}")
            )
        seen[key.alias] = key.alias
        for j, model in enumerate(key.models or ()):
            if model not in names and not model.startswith("auto"):
                problems.append(
                    doc.error(("auth", "keys", i, "models", j), f"unknown model {model!r}")
                )
    return problems


def _gpu_key(name: str) -> str:
    from router.costs.gpus import normalise_gpu_name  # local: costs imports config

    return normalise_gpu_name(name)


def _known_gpus(cfg: Config) -> set[str]:
    from router.costs.gpus import BUILTIN_GPUS  # local: costs imports config

    return {_gpu_key(g) for g in (*BUILTIN_GPUS, *cfg.gpus)}


def _check_gpus(doc: Document, cfg: Config) -> list[str]:
    """A GPU that is not built in needs both its throughput and its rent."""
    from router.costs.gpus import BUILTIN_GPUS  # local: costs imports config

    problems = []
    for name, gpu in cfg.gpus.items():
        if _gpu_key(name) in BUILTIN_GPUS:
            continue
        for field in ("tflops", "usd_per_hour"):
            if getattr(gpu, field) is None:
                problems.append(
                    doc.error(("gpus", name), f"{field} is required for a GPU that is not built in")
                )
    return problems


def _virtual(name: str) -> bool:
    return name == "auto" or name.startswith("auto:")


def build_config(doc: Document) -> Config:
    """Phase one and two on an already parsed document."""
    try:
        cfg = validate(doc, Config)
    except DocumentError as exc:
        raise ConfigError(exc.problems) from None
    problems = _cross_check(doc, cfg)
    if problems:
        raise ConfigError(problems)
    update: dict[str, Any] = {"source": doc.path}
    base = store_base(doc.path) if not doc.path.startswith("<") else None
    if base is not None:  # the packaged default or the user's config: data in the data dir
        url = rebase_sqlite_url(cfg.store.url, base)
        if url != cfg.store.url:
            update["store"] = cfg.store.model_copy(update={"url": url})
    return cfg.model_copy(update=update)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and check ``config.yaml``; raises :class:`ConfigError` naming file, line and key."""
    try:
        doc = load_file(path, env)
    except DocumentError as exc:
        raise ConfigError(exc.problems) from None
    return build_config(doc)


def config_from_text(
    text: str, path: str = "<config>", env: Mapping[str, str] | None = None
) -> Config:
    try:
        doc = parse_text(text, path, env)
    except DocumentError as exc:
        raise ConfigError(exc.problems) from None
    return build_config(doc)


def default_config_path() -> Path:
    """The config file to use when none is given: ``$ROUTER_CONFIG``, ``./config.yaml``, the
    user's config directory, else the packaged default (:func:`router.configpath.find_config`
    also says which of these it was)."""
    return find_config().path


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def resolve_key_hashes(cfg: Config, env: Mapping[str, str] | None = None) -> dict[str, KeyConfig]:
    """Map SHA-256 of each configured key to its entry. Keys from unset env vars are skipped."""
    env = os.environ if env is None else env
    out: dict[str, KeyConfig] = {}
    for key in cfg.auth.keys:
        if key.key_sha256 is not None:
            out[key.key_sha256] = key
        elif key.key_env and env.get(key.key_env):
            out[key_hash(env[key.key_env])] = key
    return out
