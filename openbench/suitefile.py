"""Reading a suite file: YAML parsed once with every key's line, duplicate keys refused, and
validation errors located at file:line and field with a did-you-mean."""

from __future__ import annotations

import functools
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from openbench import registry
from openbench.errors import SuiteError


# --- reading YAML ----------------------------------------------------------------------------


class DuplicateKey(Exception):
    def __init__(self, key: str, line: int, first: int):
        self.key, self.line = key, line
        self.problem = f"duplicate key '{key}' (first given on line {first}); YAML would silently keep only the last"


def parse_yaml(text: str, lines: dict[tuple, int]) -> Any:
    """The document, parsed once; ``lines`` receives the line of every key and item."""
    loader = _suite_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _index_lines(node, (), lines)
        return loader.construct_document(node)
    finally:
        loader.dispose()


@functools.lru_cache(maxsize=1)
def _suite_loader() -> type:
    import yaml  # here, so that importing the suite models stays light

    class SuiteLoader(yaml.SafeLoader):
        """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<` merges may be overridden on purpose
                key = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKey(key_node.value, line, seen[key])
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    # YAML 1.2 booleans: only true/false. YAML 1.1's yes/no/on/off would turn an expected answer "no" into False.
    SuiteLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    SuiteLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return SuiteLoader


# --- locating errors -------------------------------------------------------------------------


#: Values a suite may hold once YAML aliases are expanded: far above any real suite, far below a memory bomb.
MAX_VALUES = 200_000


def _index_lines(node: Any, loc: tuple, lines: dict[tuple, int]) -> None:
    import yaml

    if len(lines) >= MAX_VALUES:
        raise yaml.constructor.ConstructorError(
            None, None, f"the suite expands to more than {MAX_VALUES:,} values (nested YAML aliases?)", node.start_mark
        )
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = loc + (key.value,)
            _index_lines(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _index_lines(value, loc + (i,), lines)


def line_for(lines: dict[tuple, int], loc: tuple) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_class_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc``, following field annotations."""
    cls: type[BaseModel] | None = root
    for part in loc:
        if cls is None:
            return None
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(str(part))
        cls = _find_model(field.annotation) if field else None
    return cls


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, (types.UnionType, typing._GenericAlias)) or typing.get_origin(annotation):
        for arg in typing.get_args(annotation):
            found = _find_model(arg)
            if found:
                return found
    return None


def suite_error(exc: ValidationError, path: Path, lines: dict[tuple, int], root: type[BaseModel]) -> SuiteError:
    """The first validation problem as one SuiteError at its file:line and field, with a did-you-mean."""
    errors = exc.errors(include_url=False)
    # A misspelt key is both "unknown" and "missing"; the unknown one carries the did-you-mean.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind, msg = first["type"], first["msg"]
    if kind == "extra_forbidden":
        owner = _model_class_at(root, loc[:-1])
        known = list(owner.model_fields) if owner else []
        message = f"unknown key '{loc[-1]}'{registry.did_you_mean(str(loc[-1]), known)}"
        if known:
            message += f"; allowed here: {', '.join(known)}"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = msg.removeprefix("Value error, ")
        if "input" in first and kind not in ("value_error",) and not isinstance(first["input"], (dict, list)):
            message += f" (got {first['input']!r:.60})"
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SuiteError(message, file=str(path), line=line_for(lines, loc), field=dotted(loc) or None)
