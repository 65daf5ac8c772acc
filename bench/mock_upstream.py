"""The mock OpenAI-compatible upstream: nginx answering every POST with a fixed body.

``POST /v1/chat/completions`` returns a chat completion with usage (JSON); ``POST
/stream/v1/chat/completions`` returns a fixed SSE stream (role chunk, content chunks, a finish
chunk, a usage-only chunk, ``data: [DONE]``) as ``text/event-stream``, all at once. (The
time-to-first-byte measurement needs the stream paced, which nginx cannot do for a few kilobytes:
bench/paced_upstream.py serves that.) nginx runs in the
foreground from a generated config in the run's temporary directory (no system service), with one
worker process, no access log, on a free loopback port. The bodies are files served with sendfile
after an internal redirect (nginx refuses a POST to a static file otherwise); the request body is
discarded unread, so the upstream costs the same whatever the prompt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness import Proc, spawn, wait_port

COMPLETION = {
    "id": "chatcmpl-bench0000000000000000000000",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": (
            "The capital of France is Paris. It has been the country's political and cultural "
            "centre for centuries, and it is home to the Louvre and the Eiffel Tower."),
            "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 57, "completion_tokens": 36, "total_tokens": 93,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0,
                                            "rejected_prediction_tokens": 0}},
    "service_tier": "default",
    "system_fingerprint": "fp_bench",
}

STREAM_WORDS = ["The", " capital", " of", " France", " is", " Paris", ".", " It", " is", " home",
                " to", " the", " Louvre", "."]


def sse_body() -> bytes:
    base = {"id": "chatcmpl-bench0000000000000000000000", "object": "chat.completion.chunk",
            "created": 1700000000, "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_bench", "service_tier": "default"}

    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}], "usage": None}

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": w}) for w in STREAM_WORDS]
    events.append(chunk({}, "stop"))
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 57, "completion_tokens": 14,
                                                    "total_tokens": 71}})
    out = b"".join(b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n"
                   for e in events)
    return out + b"data: [DONE]\n\n"


def nginx_conf(tmp: Path, port: int) -> str:
    (tmp / "completion.json").write_bytes(json.dumps(COMPLETION, separators=(",", ":")).encode())
    (tmp / "stream.sse").write_bytes(sse_body())
    # the workers of a root master drop to "nobody", who cannot read a 0700 temporary directory
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_max_body_size 16m;
    client_body_buffer_size 1m;
    tcp_nodelay on;
    sendfile on;
    etag off;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        # POST to a static file is a 405: turn it into an internal redirect that serves the file
        # (nginx changes the method to GET for it and discards the request body).
        location = /v1/chat/completions {{ return 405; error_page 405 =200 /_body/completion; }}
        location = /stream/v1/chat/completions {{
            return 405;
            error_page 405 =200 /_body/stream;
        }}
        location = /_body/completion {{
            internal;
            default_type application/json;
            alias {tmp}/completion.json;
        }}
        location = /_body/stream {{
            internal;
            default_type text/event-stream;
            add_header cache-control no-cache;
            alias {tmp}/stream.sse;
        }}
        location = /v1/models {{
            default_type application/json;
            return 200 '{{"object":"list","data":[]}}';
        }}
        location / {{ return 404; }}
    }}
}}
"""


def start_mock(tmp: Path, port: int) -> Proc:
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, port))
    p = spawn("mock (nginx)", ["nginx", "-p", str(tmp), "-c", str(conf)], port,
              tmp / "nginx.log")
    wait_port(p)
    return p
