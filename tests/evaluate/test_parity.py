"""A replayed decision is the gateway's: the same rows, sent to a real gateway's
``POST /v1/route`` with the same catalogue and policy, get the same model, chain, task and
estimate."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from router.evaluate.modelmap import check_rows, load_model_map
from router.evaluate.outcomes import read_all
from router.evaluate.replay import body_of, prepare
from router.evaluate.world import build_world, load_base
from router.policy.request import load_classifier, without_signals
from tests.support import start_gateway

DATA = Path(__file__).parent / "data"

POLICY = """
version: 1
tasks:
  reasoning: {min_capability: 60}
  expression: {min_capability: 40}
low_confidence: {below: 0.6, treat_as: all_tasks}
models:
  small: {reasoning: 40, expression: 40}
  big: {reasoning: 80, expression: 80}
"""

GATEWAY_CONFIG = """
server: {{host: 127.0.0.1}}
store: {{url: "sqlite:///{tmp}/router.db"}}
auth: {{require_key: false}}
policy: policy.yaml
models:
  small:
    provider: openai
    upstream_model: small
    api_base: http://127.0.0.1:9/v1
    price: {{input_per_1m: 0, output_per_1m: 1}}
    context_window: 100000
  big:
    provider: openai
    upstream_model: big
    api_base: http://127.0.0.1:9/v1
    price: {{input_per_1m: 0, output_per_1m: 10}}
    context_window: 100000
"""


@pytest.mark.slow
def test_replayed_decisions_equal_the_gateways(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "config.yaml").write_text(GATEWAY_CONFIG.format(tmp=tmp_path))
    config, doc = load_base(DATA / "config.yaml", tmp_path / "policy.yaml")
    mm = load_model_map(DATA / "map.yaml", config, doc)
    rows = check_rows(mm, read_all([DATA / "mixed.jsonl", DATA / "four.jsonl"]))
    classify = without_signals(load_classifier()[0])
    prep = prepare(build_world(config, doc, mm), rows, "auto", classify, progress=False)
    assert {d.model for d in prep.decisions} == {"small", "big"}  # both kinds of decision

    gw = start_gateway(tmp_path / "config.yaml", tmp_path)
    try:
        for row, mine in zip(rows, prep.decisions, strict=True):
            req = urllib.request.Request(
                gw.url + "/v1/route", data=json.dumps(body_of(row, "auto")).encode(),
                headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                theirs = json.loads(resp.read())
            assert theirs["model"] == mine.model, row.id
            assert theirs["chain"] == list(mine.chain), row.id
            assert theirs["task"]["name"] == mine.task, row.id
            assert theirs["task"]["confidence"] == mine.confidence, row.id
            assert theirs["task"]["bars"] == dict(mine.bars), row.id
            assert theirs["prompt_tokens"] == mine.prompt_tokens, row.id
            assert theirs["estimated_cost"]["micro_usd"] == mine.cost_micro, row.id
    finally:
        gw.stop()
