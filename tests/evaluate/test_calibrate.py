"""``router eval calibrate`` recovers capabilities it did not see."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from router.cli import main
from router.evaluate.calibrate import wilson

DATA = Path(__file__).parent / "data"


def test_recovers_known_capabilities_from_synthetic_outcomes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    truth = {"small": 0.35, "big": 0.82}
    path = tmp_path / "synthetic.jsonl"
    with path.open("w") as f:
        for i in range(3000):
            scores = {m: float(rng.random() < p) for m, p in truth.items()}
            f.write(json.dumps({"prompt": f"Compute {i} * {i + 3} and show the steps.",
                                "dataset": "synthetic", "scores": scores}) + "\n")
    code = main(["eval", "calibrate", str(path), "--models", str(DATA / "map.yaml"),
                 "--config", str(DATA / "config.yaml"), "--route", "auto:reasoning", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["tasks"] == {"reasoning": 3000}
    for model, p in truth.items():
        got = out["models"][model]["reasoning"]
        assert got["n"] == 3000 and got["datasets"] == {"synthetic": 3000}
        low, high = got["ci95"]
        assert low <= p <= high  # the truth is inside the reported interval
        assert abs(got["capability"] - 100 * p) <= 3
        assert high - low < 0.04  # 3,000 rows: an interval of a few points


def test_wilson_interval() -> None:
    low, high = wilson(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson(1.0, 10)[1] == pytest.approx(1.0) and wilson(0.0, 10)[0] == pytest.approx(0.0)


def test_difficulty_out_writes_a_model_a_policy_can_use(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "difficulty.json"
    code = main(["eval", "calibrate", str(DATA / "mixed.jsonl"), str(DATA / "four.jsonl"),
                 "--models", str(DATA / "map.yaml"), "--config", str(DATA / "config.yaml"),
                 "--difficulty-out", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "wrote the refitted difficulty estimate" in captured.err
    from router.difficulty.model import DifficultyModel

    model = DifficultyModel.load(out)
    assert model.hashed is not None and model.meta["files"] == ["mixed.jsonl", "four.jsonl"]
    assert model.estimate("Integrate x^2 sin x from 0 to pi.").band in ("easy", "medium", "hard")
    # a policy naming it loads, and replays with it
    policy = tmp_path / "policy.yaml"
    policy.write_text((DATA / "policy.yaml").read_text()
                      + "difficulty: {weight: 1.0, model: difficulty.json}\n")
    code = main(["eval", "replay", str(DATA / "four.jsonl"), "--models", str(DATA / "map.yaml"),
                 "--config", str(DATA / "config.yaml"), "--policy", str(policy), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["difficulty"].startswith(str(out))
