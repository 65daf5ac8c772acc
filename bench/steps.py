"""CPU per request of each step of the gateway's request path, measured in-process.

    python bench/steps.py --config CONFIG --bodies BODIES.jsonl [--rounds 3]

(``bench/run.py`` runs it against the config, Redis and mock of its own run.) Builds the
gateway's AppState from the config exactly as the server does and times, with
``time.process_time`` (CPU, not wall time) over every body of the file, each step the request
path runs: parse and check the body, count tokens, classify, decide, estimate, reserve and settle
the budget on the configured store, call the upstream (the mock) through the gateway's transport
and through a bare aiohttp session, handle the answer, relay a stream, record metrics. Steps run
one request at a time on one event loop (uvloop), so the figures are per-request costs without
concurrency, the best of ``--rounds`` passes. A profile under load says where the time goes in
proportion; this says how many microseconds each step costs, and is far less sensitive to the
machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))


def _best(rounds: int, n: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


async def _abest(rounds: int, n: int, fn: Callable[[], Awaitable[None]]) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        await fn()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


async def measure(config: Path, bodies_path: Path, rounds: int) -> list[tuple[str, float, str]]:
    import aiohttp
    import orjson
    from mock_upstream import COMPLETION, sse_body
    from setup_gateway import GATEWAY_KEY

    from router import observe
    from router.config import load_config
    from router.faces import CHAT
    from router.pipeline import (
        Outcome,
        _complete,
        _decide,
        _estimate,
        _json_answer,
        _task_override,
        ledger_row,
    )
    from router.policy import RouteFacts, decide
    from router.policy.difficulty import estimate_request
    from router.policy.request import counting_model
    from router.sse import StreamRelay
    from router.state import build_state
    from router.tokens import count_chat_tokens
    from router.upstream.base import UpstreamResponse
    from router.upstream.dispatch import Dispatched
    from router.validate import check_chat, parse_json_object

    cfg = load_config(str(config))
    state = build_state(cfg)
    raws = [r for r in bodies_path.read_bytes().splitlines() if r.strip()]
    n = len(raws)
    rows: list[tuple[str, float, str]] = []
    auth = f"Bearer {GATEWAY_KEY}"
    caller = state.keys.authenticate(auth, None)
    headers: dict[str, str] = {}
    bodies = [parse_json_object(r) for r in raws]

    def add(name: str, us: float, note: str = "") -> None:
        rows.append((name, us, note))
        print(f"  {name:58s} {us:8.1f} µs", flush=True)

    add("authenticate the key (sha256 + lookup)",
        _best(rounds, n, lambda: [state.keys.authenticate(auth, None) for _ in raws]))
    add("parse + check the body (orjson.loads, check_chat)",
        _best(rounds, n, lambda: [check_chat(parse_json_object(r)) for r in raws]))
    def outcome(i: int) -> Outcome:
        return Outcome(request_id=f"req_bench_{i}", caller=caller, started=time.perf_counter())

    def all_decide() -> None:
        for i, b in enumerate(bodies):
            requested, stream, max_tokens, nn = check_chat(b)
            _decide(state, b, outcome(i), headers, requested, stream, max_tokens, nn,
                    state.unavailable)

    # one reservation first, so that the budget view holds fractions as in a running server
    warm = outcome(-1)
    requested, stream, max_tokens, nn = check_chat(bodies[0])
    d0 = _decide(state, bodies[0], warm, headers, requested, stream, max_tokens, nn,
                 state.unavailable)
    hold = await state.accountant.reserve(warm.request_id, caller, warm.policy,
                                          state.catalogue[d0.model], warm.prompt_tokens,
                                          max_tokens, nn, d0.task)
    warm.served_by = d0.model
    await state.accountant.settle(hold, 0, ledger_row(state, warm, "ok"))

    # the request path's classifier (without explanations where the state has one)
    classify = getattr(state, "classify_fast", None) or state.classify

    # Steps 1-4 as pipeline._decide runs them, timed line by line in one pass: measured apart,
    # token counting and classification each look cheaper (their caches stay warm), so the
    # interleaved figures are the ones the request path pays.
    assert state.policy is not None
    parts = ["task override header", "policy, counting model", "count prompt tokens",
             "classify", "difficulty estimate", "classification metric",
             "route facts, budgets that apply", "budget view (fractions used)",
             "policy.decide (candidates, pricing, choice)"]
    best = [float("inf")] * len(parts)
    pc = time.process_time
    for _ in range(rounds):
        acc = [0.0] * len(parts)
        for i, body in enumerate(bodies):
            out = outcome(i)
            requested, stream, max_tokens, nn = check_chat(body)
            t = [pc()]
            override = _task_override(body, headers)
            t.append(pc())
            policy = out.policy = state.policy.current
            counter = counting_model(policy, requested)
            tokenizer = state.tokenizers[counter] if counter is not None else "estimate"
            t.append(pc())
            tokens = count_chat_tokens(body, tokenizer)
            t.append(pc())
            c = classify(body["messages"]) if classify is not None else None
            t.append(pc())
            dz = estimate_request(policy.difficulty, body["messages"], c)
            t.append(pc())
            if c is not None:
                observe.classified(state.metrics, c.task, c.confidence, dz)
            t.append(pc())
            facts = RouteFacts(requested, tokens, max_tokens, nn, c, override, caller, stream,
                               dz)
            budgets = policy.budget_rules.for_caller(caller)[0]
            t.append(pc())
            view = state.accountant.view.state(budgets)
            t.append(pc())
            decide(facts, policy, budget=view)
            t.append(pc())
            for k in range(len(parts)):
                acc[k] += t[k + 1] - t[k]
        best = [min(b, a / n * 1e6) for b, a in zip(best, acc, strict=True)]
    whole = _best(rounds, n, all_decide) - _best(rounds, n, lambda: [check_chat(b) for b in bodies])
    add("steps 1-4: count, classify, decide (pipeline._decide)", whole)
    for name, us in zip(parts, best, strict=True):
        add("  " + name, us, "classifier unavailable" if name == "classify" and
            classify is None else "")

    outs = []
    for i, b in enumerate(bodies):
        out = outcome(i)
        requested, stream, max_tokens, nn = check_chat(b)
        d = _decide(state, b, out, headers, requested, stream, max_tokens, nn, state.unavailable)
        outs.append((out, d, max_tokens, nn))
    add("estimate the request's cost (pipeline._estimate)",
        _best(rounds, n, lambda: [_estimate(state, o, d.model, mt, nn) for o, d, mt, nn in outs]))

    # budgets: reserve and settle on the configured store (Redis in the bench)
    accountant = state.accountant
    holds: list[Any] = []
    k = [0]

    async def reserve_all() -> None:
        holds.clear()
        for o, d, mt, nn in outs:
            k[0] += 1
            o.request_id = f"req_bench_{k[0]}"
            holds.append(await accountant.reserve(o.request_id, caller, o.policy,
                                                  state.catalogue[d.model], o.prompt_tokens, mt,
                                                  nn, d.task))

    async def settle_all() -> None:
        for (o, d, _, _), h in zip(outs, holds, strict=True):
            o.served_by, o.actual_micro, o.completion_tokens = d.model, 100, 36
            await accountant.settle(h, 100, ledger_row(state, o, "ok"))

    best_r = best_s = float("inf")
    for _ in range(rounds):
        best_r = min(best_r, await _abest(1, n, reserve_all))
        best_s = min(best_s, await _abest(1, n, settle_all))
    store = f"{state.store.kind}, lease_fraction {cfg.store.lease_fraction}"
    add("budget reserve (accountant.reserve)", best_r, store)
    add("budget settle + ledger row (accountant.settle)", best_s, store)

    # the upstream call: the gateway's transport against a bare aiohttp session
    target = state.targets[outs[0][1].model]
    transport = state.transports[target.cfg.api_path]
    payloads = [dict(b, model=target.cfg.upstream_model) for b in bodies]

    async def send_all() -> None:
        for p in payloads:
            resp = await transport.send(target, "chat/completions", p, False)
            assert resp.status == 200, resp.body[:200]

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     skip_auto_headers=("User-Agent",)) as session:
        url = f"{target.api_base}/chat/completions"

        async def bare_all() -> None:
            for p in payloads:
                async with session.post(url, data=orjson.dumps(p), headers=target.headers) as r:
                    await r.read()

        await send_all()
        await bare_all()
        add("upstream call, JSON (OpenAICompatTransport.send)", await _abest(rounds, n, send_all),
            "incl. orjson.dumps of the body and the mock's own loopback round trip")
        add("  same call through a bare aiohttp session.post", await _abest(rounds, n, bare_all))

    async def dispatch_all() -> None:
        for (_, d, _, _), p in zip(outs, bodies, strict=True):
            await state.dispatcher.call(d.chain, "chat/completions", dict(p), False)

    add("upstream call through the dispatcher (retries, fallbacks)",
        await _abest(rounds, n, dispatch_all))

    answer = orjson.dumps(COMPLETION)

    def complete_all() -> None:
        for o, d, _, _ in outs:
            o.served_by = d.model
            dispatched = Dispatched(state.targets[d.model], UpstreamResponse(200, answer))
            _complete(state, o, CHAT.render(None, _json_answer(dispatched), answer, True))

    add("handle the answer (parse it, pipeline._complete: usage, cost, headers)",
        _best(rounds, n, complete_all))
    add("  of which Outcome.headers()", _best(rounds, n, lambda: [o.headers() for o, *_ in outs]))

    def record_all() -> None:
        for o, d, _, _ in outs:
            o.upstream_seconds = 0.001
            row = ledger_row(state, o, "ok")
            observe.spent(state.metrics, row)
            observe.finish(state.metrics, o)
            if d.confidence is not None and d.task is not None:
                observe.classified(state.metrics, d.task, d.confidence)

    add("ledger row + metrics (observe.spent, finish, classified)", _best(rounds, n, record_all))
    stream = sse_body()
    chunks = [stream[i : i + 600] for i in range(0, len(stream), 600)]

    def relay_all() -> None:
        for _ in range(n):
            relay = StreamRelay(strip_usage_chunk=True)
            for c in chunks:
                relay.feed(c)

    add("relay the mock's stream (StreamRelay.feed, 600-byte reads)", _best(rounds, n, relay_all),
        f"{len(stream)} bytes, 17 events")
    await state.aclose()
    return rows


def table(rows: list[tuple[str, float, str]]) -> str:
    out = ["| step (in-process, sequential) | µs CPU / request | note |", "| --- | ---: | --- |"]
    for name, us, note in rows:
        label = "&nbsp;&nbsp;" + name[2:] if name.startswith("  ") else name
        out.append(f"| {label} | {'–' if us != us else f'{us:.1f}'} | {note} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--bodies", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    os.chdir(REPO)
    import uvloop

    rows = uvloop.run(measure(args.config, args.bodies, args.rounds))
    print("STEPS_TABLE_BEGIN")
    print(table(rows))
    print("STEPS_TABLE_END")
    return 0


if __name__ == "__main__":
    sys.exit(main())
