"""The shipped model file: size, integrity, offline loading, recorded figures, reproducibility."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from router.classify.data import PROJECT_DATA, default_data_dir, load_training
from router.classify.model import MODEL_DIR, MODEL_JSON, WEIGHTS_BIN, Classifier, LinearModel

META = json.loads(MODEL_JSON.read_text(encoding="utf-8"))


def test_weights_file_is_small() -> None:
    assert WEIGHTS_BIN.stat().st_size <= 5 * 2**20
    total = sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file())
    assert total <= 5 * 2**20


def test_load_checks_checksum(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(MODEL_JSON.read_text())
    blob = bytearray(WEIGHTS_BIN.read_bytes())
    blob[100] ^= 0xFF
    (tmp_path / "weights.bin").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="checksum"):
        LinearModel.load(tmp_path)


def test_load_touches_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the classifier tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    c = Classifier()
    c.load()
    assert c.classify([{"role": "user", "content": "Write a poem"}]).task == "expression"


def test_weights_are_shared_and_read_only() -> None:
    m = Classifier().load()
    assert not m.hashed.flags.writeable


def test_recorded_held_out_figures_meet_targets() -> None:
    held = META["held_out"]
    for lang in ("en", "zh"):
        assert held["per_language"][lang]["balanced_accuracy"] >= 0.92, lang
        assert held["per_language"][lang]["confident_error_rate"] <= 0.02, lang
    assert len(held["per_source"]) >= 15  # sources held out one at a time
    assert held["confident_error_rate"] <= 0.02
    # calibration: in every well-populated band, accuracy is not far below the confidence
    for band in held["reliability"]:
        if band["n"] >= 200:
            assert band["accuracy"] >= band["mean_confidence"] - 0.05, band


def test_no_bbh_text_in_the_project_data() -> None:
    """BIG-Bench-Hard asks that its text never be committed: our own prompts must not copy it."""
    data = default_data_dir() / "bbh.jsonl"
    if not data.exists():
        pytest.skip(f"no {data}")
    bbh = [json.loads(line)["prompt"] for line in data.open(encoding="utf-8")]
    ours = PROJECT_DATA.read_text(encoding="utf-8")
    probes = {p[i:i + 60] for p in bbh for i in (0, len(p) // 2) if len(p) >= i + 60}
    assert not [s for s in probes if s in ours]


@pytest.mark.slow
def test_shipped_weights_reproduce_from_training_script() -> None:
    """Retrain (without the held-out folds) and compare with the shipped model.

    Byte for byte on the machine that built it; on another CPU the floating-point kernels take
    L-BFGS down a slightly different path to the same optimum (measured between two machines:
    bias 5e-4, hashed weights 0.018, explicit signals up to 0.25 (of 8.9), margins 0.006 apart on
    average and 0.19 at most, std 5.6, every decision the same), so weights are compared with
    tolerances that allow that and decisions exactly."""
    data = default_data_dir()
    if not data.is_dir():
        pytest.skip(f"training data not found at {data}")
    from router.classify.train import fingerprint, train

    rows = load_training(data, PROJECT_DATA)
    assert fingerprint(rows) == META["data_sha256"], (
        "the training data changed since the weights were built: "
        "run python -m router.classify.train")
    hp = META["hyperparameters"]
    model, _ = train(data, PROJECT_DATA, None, bits=hp["bits"], lam=hp["lam"],
                     lam_explicit=hp["lam_explicit"], folds=False, log=False)
    shipped = LinearModel.load()
    assert model.bias == pytest.approx(shipped.bias, abs=5e-3)
    assert np.allclose(model.hashed, shipped.hashed, atol=0.05)
    assert np.allclose(model.explicit, shipped.explicit, atol=0.35)
    texts = [r.prompt for r in rows[::5]]
    new = np.array([model.margin(t).value for t in texts])
    old = np.array([shipped.margin(t).value for t in texts])
    assert np.mean((new > 0) == (old > 0)) >= 0.999
    assert np.mean(np.abs(new - old)) < 0.03
    assert np.max(np.abs(new - old)) < 0.5


SCORE_TEXTS = [
    "", "   ", "x", "42", "hi there", "Write a poem", "证明", "计算 3+4",
    "Prove that the square root of 2 is irrational, step by step.",
    "请把下面这段话翻译成英文，并保持语气自然。" * 3,
    "write " * 30 + "a middle poem " + "zebra " * 30,  # cues at both ends and in the middle
    "solve prove compute derive calculate " * 40,  # many cue hits, some at the ends, some not
    " ".join(str(i) for i in range(300)),  # numbers
    "Summarise this article:\n\n" + "The committee met on Tuesday. " * 150,  # truncated
    "def f(x):\n    return x ** 2  # 😀 emoji shift UTF-16 positions\n" * 20,
    "Write a haiku about this code:\n```python\nwhile True:\n    retry()\n```",  # material
    "```python\nprint(1)\n```",  # material only
    "Translate into German: 'If x + 3 = 7, what is x?' Do not solve it.",
    "把这句话翻译成英文：“今天天气很好，我们去公园散步吧。”",
    "Summarise:\n```\n" + "log line 42\n" * 400 + "```",  # truncated inside the material
]


@pytest.mark.parametrize("text", SCORE_TEXTS)
def test_request_path_score_equals_the_full_features(text: str) -> None:
    """``score`` (packed table, no Features object) gives what ``margin`` computes the slow way:
    the weights gathered by ``Features.idx`` and the explicit signals as training sees them."""
    m = Classifier().load()
    z, n = m.score(text)
    ft = m.featurizer.featurize(text)
    full = m.bias + float(np.dot(m.explicit.astype(np.float64), ft.explicit.astype(np.float64)))
    g = m.hashed[ft.idx].astype(np.float64)
    if ft.m:
        full += g[:ft.m].sum() * ft.body_scale + g[ft.m:ft.mh].sum() * ft.head_scale
    if len(ft.idx) > ft.mh:
        full += g[ft.mh:].sum() * ft.material_scale
    if not ft.material:
        assert n == ft.n
    assert z == pytest.approx(full, abs=1e-4)
    assert m.margin(text).value == pytest.approx(full, abs=1e-4)
