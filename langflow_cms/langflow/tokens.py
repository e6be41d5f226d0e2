"""LLM token usage per model, taken from LangChain callbacks.

Langflow hands the tracing service's callbacks to every LLM call a component makes
(``Component.get_langchain_callbacks``), so one small handler sees the usage of every model in the flow,
whatever the provider, without knowing any component.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks.base import BaseCallbackHandler
from langchain_core.outputs import LLMResult

TOKENS_METRIC = "langflow_llm_tokens"
UNKNOWN_MODEL = "unknown"

_MODEL_KEYS = ("model_name", "model", "model_id", "ls_model_name", "deployment_name")


def _model_from(mapping: Any) -> str | None:
    if not isinstance(mapping, dict):
        return None
    for key in _MODEL_KEYS:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def usage_from_result(response: LLMResult) -> tuple[int, int, str | None]:
    """(input tokens, output tokens, model) of one LLM call, from whichever place the provider put them.

    Chat models fill ``message.usage_metadata`` (LangChain's standard); older integrations fill
    ``llm_output["token_usage"]`` with OpenAI's ``prompt_tokens``/``completion_tokens`` names.
    """
    input_tokens = output_tokens = 0
    model = _model_from(response.llm_output)
    found = False
    for generations in response.generations or []:
        for generation in generations:
            message = getattr(generation, "message", None)
            usage = getattr(message, "usage_metadata", None)
            if usage:
                input_tokens += int(usage.get("input_tokens", 0) or 0)
                output_tokens += int(usage.get("output_tokens", 0) or 0)
                found = True
            model = model or _model_from(getattr(message, "response_metadata", None))
    if not found and isinstance(response.llm_output, dict):
        usage = response.llm_output.get("token_usage") or response.llm_output.get("usage") or {}
        if isinstance(usage, dict):
            input_tokens = int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0)
            output_tokens = int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0)
    return input_tokens, output_tokens, model


class TokenUsageHandler(BaseCallbackHandler):
    """Reports each LLM call's token usage through ``emit(model, direction, tokens)``.

    The model name is remembered from the start event (invocation params and ``ls_model_name`` metadata are
    the most reliable place) in case the provider's result does not repeat it. Never raises: a callback
    error would surface inside the user's LLM call.
    """

    raise_error = False

    def __init__(self, emit: Callable[[str, str, int], None]) -> None:
        super().__init__()
        self._emit = emit
        self._models: dict[UUID, str] = {}

    def _remember(self, run_id: UUID, kwargs: dict[str, Any], serialized: Any) -> None:
        model = (
            _model_from(kwargs.get("invocation_params"))
            or _model_from(kwargs.get("metadata"))
            or _model_from((serialized or {}).get("kwargs") if isinstance(serialized, dict) else None)
        )
        if model:
            self._models[run_id] = model

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._remember(run_id, kwargs, serialized)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._remember(run_id, kwargs, serialized)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._models.pop(run_id, None)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        remembered = self._models.pop(run_id, None)
        try:
            input_tokens, output_tokens, model = usage_from_result(response)
            model = model or remembered or UNKNOWN_MODEL
            if input_tokens:
                self._emit(model, "input", input_tokens)
            if output_tokens:
                self._emit(model, "output", output_tokens)
        except Exception:
            return
