"""Example support code: an offline, deterministic LLM so the example flows run without network or keys."""
