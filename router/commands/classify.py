"""``router classify``: sort prompts into reasoning or expression with the shipped classifier."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

NAME = "classify"
HELP = "classify a prompt (or JSON lines on stdin) as reasoning or expression"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?",
                        help='the prompt to classify ("-" reads it from stdin)')
    parser.add_argument("--system", default=None, help="a system prompt to send along (context)")
    parser.add_argument("--jsonl", action="store_true",
                        help='read JSON lines with "prompt" or "messages" from stdin; write one '
                             'JSON line per input with "task" and "confidence"')
    parser.add_argument("--signals", action="store_true",
                        help="with --jsonl: include the signals in each output line")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _messages(obj: Any) -> list[dict[str, Any]]:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list):
            raise ValueError('"messages" must be a list')
        return msgs
    prompt = obj.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError('each line needs a "prompt" string or a "messages" list')
    return [{"role": "user", "content": prompt}]


def run_jsonl(inp: TextIO, out: TextIO, signals: bool = False) -> int:
    """Classify JSON lines from ``inp``; a bad line gets an error object, not a crash."""
    from router.classify import classify

    for lineno, line in enumerate(inp, 1):
        if not line.strip():
            continue
        result: dict[str, Any] = {}
        try:
            obj = json.loads(line)
            if isinstance(obj, dict) and "id" in obj:
                result["id"] = obj["id"]
            c = classify(_messages(obj), explain=signals)
            result.update(task=c.task, confidence=c.confidence)
            if signals:
                result["signals"] = list(c.signals)
        except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            result.update(error=str(exc).splitlines()[0], line=lineno)
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    out.flush()
    return 0  # errors are reported in-band, one object per bad line


def run(args: argparse.Namespace) -> int:
    from router.cli import UsageError

    if args.jsonl:
        if args.text is not None:
            raise UsageError("--jsonl reads stdin: give no TEXT with it")
        return run_jsonl(sys.stdin, sys.stdout, signals=args.signals)
    text = args.text
    if text is None:
        raise UsageError('give the TEXT to classify, "-" to read it from stdin, or --jsonl')
    if text == "-":
        text = sys.stdin.read()
    from router.classify import classify

    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": text})
    c = classify(messages)
    if args.json:
        print(json.dumps({"task": c.task, "confidence": c.confidence,
                          "signals": list(c.signals)}, ensure_ascii=False))
        return 0
    print(f"task:       {c.task}")
    print(f"confidence: {c.confidence:.2f}")
    print("signals:    " + ("; ".join(c.signals) if c.signals else "(none)"))
    return 0
