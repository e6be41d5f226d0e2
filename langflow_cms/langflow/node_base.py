"""The one base class of the four canvas nodes: its pass-through input and output, its documentation link,
and its build method, which runs the node's step (``run_node``) and shows what it returns on the node.

Each node in ``components/cms_monitor/`` then only declares its name, texts and own inputs. Langflow saves
that declaration inside every flow; this base (and the steps it calls) stays in the installed package, so a
fix here reaches every saved flow. Imported only by the bundle: it needs lfx.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from lfx.custom.custom_component.component import Component
from lfx.io import HandleInput
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from langflow_cms.langflow import node_keys
from langflow_cms.langflow.canvas import pass_through_output, with_absent_flags

DOCUMENTATION = "https://github.com/langflow-cms/langflow-cms/blob/main/docs/usage.md"
INPUT_TYPES = ("Message", "Data", "JSON", "DataFrame", "Table")


def pass_through_input(info: str, *, required: bool = True) -> HandleInput:
    """Every node's ``input_value``: any of Langflow's data types, passed through unchanged."""
    return HandleInput(
        name="input_value", display_name="Input", input_types=list(INPUT_TYPES), info=info, required=required
    )


def node_inputs(*inputs: Any) -> list[Any]:
    """A node's inputs, with the flags lfx looks up on each (``canvas.with_absent_flags``)."""
    return with_absent_flags(list(inputs))


class MonitorNodeComponent(Component):
    """A CMS Monitor node: passes its input through and shows its step's status text on the node."""

    documentation = DOCUMENTATION
    outputs: ClassVar[list[Any]] = [pass_through_output()]  # the same types on every start, Message first
    run_node: ClassVar[Callable[[Any], str | Awaitable[str]]]
    """The node's step, called with the component; returns the status text (never raises)."""

    async def get_variable(self, name: str, field: str, session: Any) -> Any:
        """Langflow's global-variable lookup of a field; an AccessKey typed in is the key itself
        (``node_keys.variable_or_typed_key``)."""
        return await node_keys.variable_or_typed_key(super().get_variable, name, field, session)

    async def pass_through(self) -> Message | Data | DataFrame:
        status = type(self).run_node(self)
        self.status = await status if inspect.isawaitable(status) else status
        return self.input_value if self.input_value is not None else Message(text="")
