"""Yelp's detect-secrets against langflow_cms.redact on the #24 redaction corpus: coverage and cost.

Run: uv run --with detect-secrets==1.5.0 python -m bench.redaction_eval   (not part of `make bench`: it
needs a package the project does not depend on). Prints one line per detector.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from redaction_corpus import CORPUS, HARMLESS

from langflow_cms.redact import redact


def detect_secrets_redact():
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    def run(text: str) -> str:
        with default_settings():
            for found in scan_line(text):
                value = found.secret_value
                if value:
                    text = text.replace(value, "***")
        return text

    return run


def measure(name: str, run) -> None:
    missed = [label for label, text, secret in CORPUS if secret in run(text)]
    damaged = [text for text in HARMLESS if run(text) != text]
    texts = [text for _, text, _ in CORPUS] + HARMLESS
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            run(text)
    per_event_us = (time.perf_counter() - started) / (rounds * len(texts)) * 1e6
    print(
        f"{name}: caught {len(CORPUS) - len(missed)}/{len(CORPUS)}, changed {len(damaged)}/{len(HARMLESS)} "
        f"harmless messages, {per_event_us:.0f} µs per message; missed: {', '.join(missed) or 'none'}"
    )


if __name__ == "__main__":
    measure("langflow_cms.redact", redact)
    try:
        measure("detect-secrets", detect_secrets_redact())
    except ImportError:
        print("detect-secrets: not installed (see this module's docstring)")
