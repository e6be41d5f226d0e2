"""An offline chat model that writes a deterministic poem with realistic, varying latency.

The example flows, the demo and the tests need an LLM that runs without network or keys, answers the same
prompt with the same text (so outputs can be asserted), takes a plausible and varying amount of time (so
latency percentiles mean something) and reports token usage like a real provider (so
``langflow_llm_tokens`` can be shown).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

MODELS = ("offline-poet-mini", "offline-poet-large")
_VOCABULARY = """
    morning light river stone quiet ember silver wind harbor lantern meadow echo velvet thunder
    orchard salt candle frost willow tide compass ember hollow sparrow amber cinder dusk
"""
_WORDS = tuple(_VOCABULARY.split())


class SimulatedProviderError(RuntimeError):
    """What the fake raises when asked to fail, standing in for a provider outage."""


def _topic(prompt: str) -> str:
    marker = "about "
    return prompt.rsplit(marker, 1)[-1].strip().rstrip(".") if marker in prompt else prompt.strip()


def write_poem(prompt: str, model: str = MODELS[0]) -> str:
    """The same prompt and model always give the same poem."""
    seed = int.from_bytes(hashlib.sha256(f"{model}|{prompt}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    lines = 4 if model == MODELS[0] else 8
    topic = _topic(prompt) or "nothing"
    verses = [f"Of {topic} I sing,"]
    for _ in range(lines - 1):
        verses.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 6))).capitalize() + ",")
    verses[-1] = verses[-1].rstrip(",") + "."
    return "\n".join(verses)


def count_tokens(text: str) -> int:
    """Roughly what a BPE tokenizer gives for English: 4 tokens per 3 words."""
    return max(1, math.ceil(len(text.split()) * 4 / 3))


def latency_s(output_tokens: int, model: str, scale: float = 1.0) -> float:
    """Time to first token plus per-token time, with log-normal jitter and a rare slow tail."""
    per_token = 0.004 if model == MODELS[0] else 0.009
    base = 0.05 + per_token * output_tokens
    jitter = random.lognormvariate(0.0, 0.35)
    tail = 3.0 if random.random() < 0.03 else 1.0
    return max(0.0, base * jitter * tail * scale)


class OfflinePoetChatModel(BaseChatModel):
    """A LangChain chat model; token usage is reported in ``usage_metadata`` like real providers do."""

    model_name: str = MODELS[0]
    latency_scale: float = 1.0
    fail_when: str = ""

    @property
    def _llm_type(self) -> str:
        return "offline-poet"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _answer(self, messages: list[BaseMessage]) -> tuple[ChatResult, float]:
        prompt = "\n".join(str(m.content) for m in messages)
        if self.fail_when and (self.fail_when == "*" or self.fail_when in prompt):
            raise SimulatedProviderError(f"{self.model_name}: simulated provider error")
        poem = write_poem(prompt, self.model_name)
        usage = {
            "input_tokens": count_tokens(prompt),
            "output_tokens": count_tokens(poem),
            "total_tokens": count_tokens(prompt) + count_tokens(poem),
        }
        message = AIMessage(
            content=poem, usage_metadata=usage, response_metadata={"model_name": self.model_name}
        )
        delay = latency_s(usage["output_tokens"], self.model_name, self.latency_scale)
        return ChatResult(
            generations=[ChatGeneration(message=message)], llm_output={"model_name": self.model_name}
        ), delay

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result, delay = self._answer(messages)
        time.sleep(delay)
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result, delay = self._answer(messages)
        await asyncio.sleep(delay)
        return result
