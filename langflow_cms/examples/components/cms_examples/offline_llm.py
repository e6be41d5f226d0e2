"""Offline Poet: the example flows' LLM. Thin; the model lives in `langflow_cms.examples.fake_llm`."""

from lfx.custom.custom_component.component import Component
from lfx.io import DropdownInput, FloatInput, MessageInput, MessageTextInput, Output
from lfx.schema.message import Message

from langflow_cms.examples.fake_llm import MODELS, OfflinePoetChatModel


class OfflinePoetComponent(Component):
    display_name = "Offline Poet"
    description = "A deterministic offline LLM for examples and tests: no network, realistic latency."
    icon = "feather"
    name = "OfflinePoet"

    inputs = [  # noqa: RUF012 — Langflow reads these class attributes
        MessageInput(name="prompt", display_name="Prompt", required=True),
        DropdownInput(name="model_name", display_name="Model", options=list(MODELS), value=MODELS[0]),
        FloatInput(
            name="latency_scale",
            display_name="Latency Scale",
            value=1.0,
            advanced=True,
            info="Multiplies the simulated latency (0 = instant).",
        ),
        MessageTextInput(
            name="fail_when",
            display_name="Fail When Prompt Contains",
            value="",
            advanced=True,
            info="Raise a simulated provider error when the prompt contains this text (* = always).",
        ),
    ]
    outputs = [Output(display_name="Text", name="text", method="generate")]  # noqa: RUF012

    async def generate(self) -> Message:
        model = OfflinePoetChatModel(
            model_name=self.model_name, latency_scale=self.latency_scale, fail_when=self.fail_when or ""
        )
        prompt = self.prompt.text if isinstance(self.prompt, Message) else str(self.prompt)
        reply = await model.ainvoke(prompt, config={"callbacks": self.get_langchain_callbacks()})
        self.status = reply.content
        return Message(text=str(reply.content))
