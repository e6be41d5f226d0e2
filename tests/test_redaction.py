"""#24 §7: no secret or personal datum of the corpus reaches an event, a log line, a node status or the spool;
the spool is readable by its owner only."""

from __future__ import annotations

import io
import json
import logging
import stat

from redaction_corpus import CORPUS, HARMLESS

from langflow_cms import lifecycle
from langflow_cms.events import EventStream, safe_message
from langflow_cms.langflow import canvas, monitor
from langflow_cms.redact import install_log_redaction


def test_the_corpus_is_large_enough_and_each_form_is_distinct():
    assert len(CORPUS) >= 40
    assert len({label for label, _, _ in CORPUS}) == len(CORPUS)
    assert all(secret in text for _, text, secret in CORPUS)


def _leaks(text: str) -> list[str]:
    return [label for label, _, secret in CORPUS if secret in text]


def _capture(logger_name: str) -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger(logger_name).addHandler(handler)
    return stream, handler


def test_no_corpus_form_survives_into_a_failure_event_or_its_json_log_line():
    """#24 §7: these went verbatim into PutCustomEvent content and the JSON log line."""
    sent: list[dict[str, str]] = []
    stream = EventStream(per_minute=1000, group_id="", sink=sent.extend)
    log_text, handler = _capture("langflow_cms.events")
    try:
        for label, text, _ in CORPUS:
            error = RuntimeError(text)
            stream.emit(
                "langflow_flow_failed",
                {"flow": "f", "error_type": "RuntimeError", "message": safe_message(error), "label": label},
            )
    finally:
        logging.getLogger("langflow_cms.events").removeHandler(handler)
    events_text = json.dumps(sent, ensure_ascii=False)
    assert len(sent) == len(CORPUS)
    assert not _leaks(events_text), _leaks(events_text)
    assert log_text.getvalue().count("\n") == len(CORPUS)
    assert not _leaks(log_text.getvalue()), _leaks(log_text.getvalue())


def test_no_corpus_form_survives_into_the_plugins_log_lines():
    install_log_redaction()  # as the reporter does when it starts
    log_text, handler = _capture("langflow_cms")
    log = logging.getLogger("langflow_cms")  # the plugin's logger
    try:
        for _, text, _ in CORPUS:
            log.warning("delivery failed: %s", text)
            try:
                raise ValueError(text)
            except ValueError:
                log.exception("closing failed")
    finally:
        logging.getLogger("langflow_cms").removeHandler(handler)
    assert "delivery failed" in log_text.getvalue()
    assert not _leaks(log_text.getvalue()), _leaks(log_text.getvalue())


def test_what_a_reader_needs_survives():
    for text in HARMLESS:
        assert safe_message(text) == text


def test_no_corpus_form_survives_into_a_node_status(monkeypatch):
    """A bad setting's value is quoted in the reason a CMS Metric node shows: a secret pasted into the
    wrong variable must not be shown back."""
    for label, text, _ in CORPUS:
        monkeypatch.setenv("LANGFLOW_CMS_ENDPOINT", f"https://example.com/{text}")
        monkeypatch.setattr(lifecycle, "_reporter", None)
        monkeypatch.setattr(monitor, "get_recorder", lifecycle.get_reporter)
        canvas._status_cache[:] = [None, 0.0, ""]
        status = canvas.reporter_status()
        assert "LANGFLOW_CMS_ENDPOINT" in status, status
        assert not _leaks(status), (label, status)
    monkeypatch.setattr(lifecycle, "_reporter", None)


def test_no_corpus_form_reaches_the_spool_and_the_spool_is_owner_only(make_reporter, tmp_path):
    """#24 §7: spool files were mode 0644 in 0755 folders, and held the secrets of undelivered events."""
    spool = tmp_path / "spool"
    reporter = make_reporter(
        LANGFLOW_CMS_ENDPOINT="http://127.0.0.1:9",
        LANGFLOW_CMS_SPOOL_DIR=str(spool),
        LANGFLOW_CMS_EVENTS_PER_MINUTE="1000",
    )
    for label, text, _ in CORPUS:
        reporter.events.emit(  # type: ignore[union-attr]
            "langflow_flow_failed", {"flow": "f", "message": safe_message(RuntimeError(text)), "label": label}
        )
        reporter.record("langflow_flow_runs", 1.0, {"flow": "f", "status": "error"})
    reporter.close(timeout=1)
    files = [p for p in spool.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files)
    written = "".join(p.read_text("utf-8", errors="replace") for p in files)
    assert "langflow_flow_failed" in written  # the undelivered events are there, redacted
    assert not _leaks(written), _leaks(written)
    for path in [spool, *spool.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.relative_to(tmp_path)} is {oct(mode)}"
