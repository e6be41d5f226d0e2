"""Writing Python for the export: names, literals, calls, the custom components' code and the imports."""

from __future__ import annotations

import ast
import json
import keyword
import re
from dataclasses import dataclass
from typing import Any

from langflow_cms.ops.export.flow import UNSET, ExportError, Node


# --- naming --------------------------------------------------------------------------------------------
def snake(text: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    text = re.sub(r"\W+", "_", text).strip("_").lower()
    return text if text and not text[0].isdigit() else f"node_{text}"


def unique(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken or keyword.iskeyword(name):
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def py_call(head: str, args: list[str]) -> str:
    flat = f"{head}({', '.join(args)})"
    if len(flat) <= 110 and "\n" not in flat:
        return flat
    return f"{head}(\n" + "".join(f"    {arg},\n" for arg in args) + ")"


# --- embedded code -------------------------------------------------------------------------------------
@dataclass
class Embedded:
    """The source of one custom component, split into its imports and the rest."""

    node_id: str
    class_name: str
    imports: list[str]
    """Each top-level import statement of the code (hoisted to the top of the script)."""
    body: str


TYPING_NAMES = frozenset({"Optional", "List", "Dict", "Union"})


def _implicit_names() -> set[str]:
    """Names Langflow pre-imports into flow code (``lfx.custom.validate.get_default_imports``)."""
    import lfx.field_typing
    from lfx.field_typing.constants import CUSTOM_COMPONENT_SUPPORTED_TYPES

    return set(TYPING_NAMES) | {n for n in CUSTOM_COMPONENT_SUPPORTED_TYPES if hasattr(lfx.field_typing, n)}


def split_code(node: Node, class_name: str) -> Embedded:
    """Hoist the imports to the top of the script; drop the module docstring; rename the class if asked."""
    tree = ast.parse(node.code)
    lines = node.code.splitlines()
    drop: set[int] = set()
    imports: list[str] = []
    for index, statement in enumerate(tree.body):
        span = range(statement.lineno - 1, (statement.end_lineno or statement.lineno))
        if isinstance(statement, ast.Import | ast.ImportFrom):
            imports.append(ast.unparse(statement))
            drop.update(span)
        elif index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            drop.update(span)  # module docstring
    # Langflow runs flow code with a few names pre-imported (Data, Message, Optional...); make them explicit.
    bound = {
        a.asname or a.name.split(".")[0]
        for s in ast.walk(tree)
        if isinstance(s, ast.Import | ast.ImportFrom)
        for a in s.names
    }
    bound |= {
        s.name for s in tree.body if isinstance(s, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    }
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for name in sorted((_implicit_names() & used) - bound):
        module = "typing" if name in TYPING_NAMES else "lfx.field_typing"
        imports.append(f"from {module} import {name}")
    body = "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n")
    body = re.sub(r"\n{3,}", "\n\n\n", body)
    if class_name != node.class_name:
        body = re.sub(rf"\b{re.escape(node.class_name)}\b", class_name, body)
    return Embedded(node.id, class_name, imports, body)


# --- values --------------------------------------------------------------------------------------------
def _is_secret(spec: dict) -> bool:
    return bool(
        spec.get("password") or spec.get("load_from_db") or spec.get("_input_type") == "SecretStrInput"
    )


def _env_name(node: Node, field_name: str, spec: dict, used: dict[str, tuple[str, str]]) -> str:
    """The variable a secret is read from: the Langflow global variable's own name, else NODE_FIELD."""
    value = spec.get("value")
    if spec.get("load_from_db") and isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return value
    name = re.sub(r"\W+", "_", f"{node.id}_{field_name}").strip("_").upper()
    owner = used.setdefault(name, (node.id, field_name))
    if owner != (node.id, field_name):
        name = f"{name}_{len(used)}"
        used[name] = (node.id, field_name)
    return name


def literal(value: Any, indent: int = 4) -> str:
    """A Python literal in the script's style (double quotes); a long dict or list gets one item a line."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid Python
    if isinstance(value, dict):
        items, brackets = [f"{literal(k)}: {literal(v, indent + 4)}" for k, v in value.items()], "{}"
    elif isinstance(value, list | tuple):
        items, brackets = [literal(v, indent + 4) for v in value], "[]"
    else:
        return repr(value)
    flat = brackets[0] + ", ".join(items) + brackets[1]
    if len(flat) + indent <= 100 and "\n" not in flat:
        return flat
    pad = " " * (indent + 4)
    return brackets[0] + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + brackets[1]


def field_values(
    node: Node, connected: set[str], secrets: dict[str, tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(plain values, secret look-ups) as (field, Python expression), leaving out the component's defaults.

    Secrets are kept apart because they are passed with ``.set()``: lfx takes a ``SecretStrInput``
    constructor argument as the *name* of a Langflow global variable, while ``.set()`` passes the value.
    """
    out: list[tuple[str, str]] = []
    hidden: list[tuple[str, str]] = []
    for name, spec in node.template.items():
        if name == "code" or name.startswith("_") or not isinstance(spec, dict) or "value" not in spec:
            continue
        if name in connected:
            continue
        value = spec["value"]
        if _is_secret(spec):
            if value in (None, ""):
                continue
            hidden.append((name, f"secret({literal(_env_name(node, name, spec, secrets))})"))
            continue
        default = node.defaults.get(name, UNSET)
        if default is not UNSET and (value == default or (default is None and not value)):
            continue
        out.append((name, literal(value)))
    return out, hidden


# --- imports -------------------------------------------------------------------------------------------
def import_block(imports: list[tuple[str, str]]) -> list[str]:
    """Merge and sort the import statements of every component.

    A name imported from two places is fine when both are the same object (``lfx.io.BoolInput`` is
    ``lfx.inputs.inputs.BoolInput``): the first import is kept. Two different objects under one name are an
    error. ``from __future__`` imports sort first, as Python requires.
    """
    plain: set[str] = set()
    from_: dict[str, set[str]] = {}
    bound: dict[str, tuple[str, str]] = {}  # name -> (where it comes from, node id)
    for node_id, source in [*imports, ("", "from lfx.graph import Graph")]:
        statement = ast.parse(source).body[0]
        assert isinstance(statement, ast.Import | ast.ImportFrom)
        module = statement.module if isinstance(statement, ast.ImportFrom) and not statement.level else None
        for alias in statement.names:
            name = alias.asname or alias.name.split(".")[0]
            if module:
                origin = f"{module}.{alias.name}"
            else:  # `import a.b` binds `a`; `import a.b as c` binds the module a.b
                origin = alias.name if alias.asname else alias.name.split(".")[0]
            if name in bound and bound[name][0] != origin:
                _check_same(name, (origin, node_id), bound[name])
                continue  # the same object: one import binds it for every component
            bound[name] = (origin, node_id)
            if module:
                from_.setdefault(module, set()).add(
                    alias.name + (f" as {alias.asname}" if alias.asname else "")
                )
            elif isinstance(statement, ast.Import):
                plain.add(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
            else:
                plain.add(ast.unparse(statement))
    lines = sorted(plain)
    for module in sorted(from_, key=lambda m: (m != "__future__", m)):
        names = sorted(from_[module])
        line = f"from {module} import {', '.join(names)}"
        if len(line) > 110:
            line = f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
        lines.append(line)
    return lines


def _check_same(name: str, new: tuple[str, str], old: tuple[str, str]) -> None:
    """Refuse two components that import different objects under one name (the script has one namespace).

    To tell, the two modules are imported: installed code, like the script's own imports; the flow's
    code is never run.
    """
    try:
        same = _resolve(new[0]) is _resolve(old[0])
        why = "different objects"
    except Exception as exc:  # any import failure means: cannot tell
        same, why = False, f"cannot tell whether they are the same object here ({type(exc).__name__}: {exc})"
    if not same:
        raise ExportError(
            f"node {new[1]}: its code imports {name} as {new[0]}, node {old[1]} as {old[0]} ({why}); "
            "rename one of them in its code"
        )


def _resolve(dotted: str) -> object:
    """The object ``from a.b import c`` (given ``a.b.c``) or ``import a.b`` binds."""
    import importlib

    try:
        return importlib.import_module(dotted)
    except ImportError:
        module, _, attribute = dotted.rpartition(".")
        if not module:
            raise
        return getattr(importlib.import_module(module), attribute)
