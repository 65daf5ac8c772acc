"""``router spend`` after real traffic through a gateway: a request that failed (503 upstream)
shows in a ``failed`` column and costs nothing; an embeddings request (no reference model for
embeddings) shows no savings, not -$0.000001."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.cli.support import router, user_env
from tests.gateway.conftest import ENV, GATEWAY_KEY, write_config
from tests.support import Proc, start_fake_upstream, start_gateway


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("spend")
    fake = start_fake_upstream(tmp)
    config = write_config(tmp, fake.url)
    gateway: Proc | None = None
    try:
        gateway = start_gateway(config, tmp, env=ENV)
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0,
                               timeout=30)
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hello"}])
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="broken-alone",
                                           messages=[{"role": "user", "content": "hello"}])
        assert failed.value.status_code in (502, 503)
        client.embeddings.create(model="text-embedding-3-small", input="hello world")
        yield config
    finally:
        if gateway is not None:
            gateway.stop()
        fake.stop()


def report(config: Path, tmp_path: Path, *argv: str) -> Any:
    done = router("spend", "--config", str(config), "--period", "total", *argv, cwd=tmp_path,
                  env=user_env(tmp_path))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in argv else done.stdout


def test_failed_requests_are_counted_apart_and_cost_nothing(traffic: Path,
                                                            tmp_path: Path) -> None:
    rep = report(traffic, tmp_path, "--group-by", "model", "--json")
    rows = {r["group"]["model"]: r for r in rep["data"]}
    broken = rows["broken-alone"]
    assert broken["requests"] == 1 and broken["failed_requests"] == 1
    assert broken["actual_micro"] == 0 and broken["reference_micro"] == 0
    assert rows["gpt-4o-mini"]["failed_requests"] == 0 and rows["gpt-4o-mini"]["actual_micro"] > 0
    assert rep["total"]["requests"] == 3 and rep["total"]["failed_requests"] == 1
    text = report(traffic, tmp_path, "--group-by", "model")
    lines = text.splitlines()
    assert lines[2].split()[:3] == ["model", "requests", "failed"]
    table = {ln.split()[0]: ln.split() for ln in lines[4:lines.index("", 4)]}
    assert table["broken-alone"][1:3] == ["1", "1"] and table["broken-alone"][5] == "0.000000"
    assert table["TOTAL"][1:3] == ["3", "1"]
    assert "failed: of the requests, those answered with an error" in text


def test_embeddings_show_no_negative_savings(traffic: Path, tmp_path: Path) -> None:
    rep = report(traffic, tmp_path, "--group-by", "model", "--json")
    emb = next(r for r in rep["data"] if r["group"]["model"] == "text-embedding-3-small")
    # 2 tokens at $0.02/1M, rounded up to 1 µ$ once; no reference model embeds, so the
    # reference is what was paid: nothing saved, nothing lost
    assert emb["actual_micro"] == 1 and emb["reference_micro"] == 1
    assert emb["savings_micro"] == 0
    chat = next(r for r in rep["data"] if r["group"]["model"] == "gpt-4o-mini")
    assert chat["reference_micro"] > chat["actual_micro"]  # gpt-4o is the reference
    assert rep["total"]["savings_micro"] == chat["savings_micro"]
    text = report(traffic, tmp_path, "--group-by", "model")
    assert "-0.0" not in text
