"""The bare pass-through baseline of DESIGN decision 1: uvicorn + uvloop + httptools, and one
pooled aiohttp client session, as a raw ASGI app (no framework).

Per request it reads the body, parses it, rewrites ``model``, serialises it, POSTs it to the
upstream and returns the answer (relaying a stream's bytes as they come). Nothing else: no
tokens, no classification, no policy, no budgets, no metrics. What the gateway costs on top of
this, in the same run, is the price of its features.

    python bench/passthrough.py --port 9001 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import orjson
import uvicorn

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def make_app(upstream: str, model: str, paced: str | None = None) -> Any:
    session: aiohttp.ClientSession | None = None
    plain_url = f"{upstream}/v1/chat/completions"
    stream_url = f"{upstream}/stream/v1/chat/completions"
    # the bench's model names pick the mock's path, as the gateway's routes do
    by_model = {"auto": plain_url, "auto-stream": stream_url,
                "auto-ttfb": f"{paced or upstream}/v1/chat/completions"}
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-upstream"}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                        skip_auto_headers=("User-Agent",))
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    if session is not None:
                        await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":  # readiness probe
            await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
            await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
            return
        chunks = []
        more = True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = orjson.loads(b"".join(chunks))
        stream = bool(body.get("stream"))
        url = by_model.get(body.get("model"), stream_url if stream else plain_url)
        body["model"] = model
        assert session is not None
        async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
            if not stream:
                data = await resp.read()
                await send({"type": "http.response.start", "status": resp.status,
                            "headers": JSON_HEADERS})
                await send({"type": "http.response.body", "body": data})
                return
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": SSE_HEADERS})
            async for data in resp.content.iter_any():
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--paced", help="the paced streaming upstream (model auto-ttfb)")
    ap.add_argument("--model", default="gpt-4o-mini")
    args = ap.parse_args()
    uvicorn.run(make_app(args.upstream, args.model, args.paced), host="127.0.0.1", port=args.port,
                loop="uvloop", http="httptools", access_log=False, log_level="warning",
                lifespan="on", timeout_keep_alive=30)


if __name__ == "__main__":
    main()
