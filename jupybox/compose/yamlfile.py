"""Compose files as Python data, with the line of every key, read safely (PyYAML).

- **YAML 1.2 scalars**, as compose-go's YAML library reads them: ``no``, ``on`` and ``yes`` are
  strings (``restart: no`` is the policy "no", not false), ``22:22`` is a string (PyYAML's YAML 1.1
  makes it the sexagesimal int 1342), ``0o17`` and ``0x1f`` are ints, ``017`` is 17, dates stay
  strings. Anchors, aliases and ``<<`` merge keys work as in any YAML.
- **Compose's merge tags**: ``!reset`` (drop the value inherited from an earlier file) and
  ``!override`` (replace it instead of merging), see ``merge.py``.
- **Limits**: a file larger than ``MAX_BYTES``, more than ``MAX_NODES`` nodes once aliases are
  expanded (the "billion laughs": ten aliases of ten aliases... cost nothing to parse and
  everything to use), nesting deeper than ``MAX_DEPTH``, a duplicate key or a non-scalar key is a
  one-line error naming the file and the line.

``lines`` maps a path (``("services", "web", "ports", 0)``) to the line of its key or item, so
that any later error (schema, interpolation, a cycle) can name where it comes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from .errors import ComposeError

MAX_BYTES = 4 << 20
MAX_NODES = 250_000
MAX_DEPTH = 64


class _Reset:
    """``!reset``: the key is removed from what earlier files defined."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "!reset"


RESET = _Reset()


@dataclass
class Override:
    """``!override VALUE``: VALUE replaces what earlier files defined instead of being merged."""

    value: object


@dataclass
class Document:
    file: str  # as shown in messages (the path as given, or "<cell>")
    data: dict
    lines: dict = field(default_factory=dict)  # path tuple -> 1-based line

    def line_of(self, path) -> int | None:
        """The line of ``path`` or of its closest ancestor that the file has."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


# YAML 1.2 core schema resolvers (PyYAML implements YAML 1.1)
_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body.startswith(("0x", "0o")):
        return sign * int(body, 0)
    return sign * int(body, 10)


def _construct_bool(loader, node):
    return loader.construct_scalar(node).lower() == "true"


def _construct_reset(loader, node):
    return RESET


def _construct_override(loader, node):
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    tag = loader.resolve(yaml.ScalarNode, node.value, (True, False))
    plain = yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
    return Override(loader.construct_object(plain, deep=True))


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_Loader.add_constructor("!reset", _construct_reset)
_Loader.add_constructor("!override", _construct_override)


class _Walk:
    """Counts nodes (aliases expanded), checks depth and keys, records lines."""

    def __init__(self, file: str, lines: dict):
        self.file = file
        self.lines = lines
        self.nodes = 0

    def error(self, node, message: str) -> ComposeError:
        return ComposeError(message, self.file, node.start_mark.line + 1)

    def walk(self, node, path: tuple, depth: int = 0) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(node, f"more than {MAX_NODES} YAML nodes once aliases are expanded")
        if depth > MAX_DEPTH:
            raise self.error(node, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            seen = set()
            merges = []
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    merges.append(vnode)
                    continue
                if not isinstance(knode, yaml.ScalarNode):
                    raise self.error(knode, "a mapping key must be a scalar")
                key = knode.value
                if key in seen:
                    raise self.error(knode, f"mapping key {key!r} already defined")
                seen.add(key)
                self.lines.setdefault(path + (key,), knode.start_mark.line + 1)
                self.walk(vnode, path + (key,), depth + 1)
            for merged in merges:  # explicit keys keep their own lines
                for src in merged.value if isinstance(merged, yaml.SequenceNode) else [merged]:
                    if not isinstance(src, yaml.MappingNode):
                        raise self.error(src, "a merge key (<<) takes a mapping or a list of mappings")
                    self.walk(src, path, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines.setdefault(path + (i,), item.start_mark.line + 1)
                self.walk(item, path + (i,), depth + 1)


def _string_keys(value):
    """Keys as strings (compose's model is JSON); 1 -> "1", True -> "true"."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = ("true" if k else "false") if isinstance(k, bool) else ("null" if k is None else str(k))
            out[key] = _string_keys(v)
        return out
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    if isinstance(value, Override):
        return Override(_string_keys(value.value))
    return value


def load_text(text: str, file: str, loader_class=None) -> list[Document]:
    """Every YAML document of ``text`` (compose merges them in order). ``loader_class``: other
    scalar rules (``kube`` reads manifests as YAML 1.1, as kubectl does); same walk and limits."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ComposeError(f"larger than {MAX_BYTES >> 20} MiB", file)
    loader = (loader_class or _Loader)(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: dict = {}
            _Walk(file, lines).walk(node, ())
            data = _string_keys(loader.construct_document(node))
            if data is None:
                continue
            if not isinstance(data, dict):
                raise ComposeError("the top level must be a mapping", file, node.start_mark.line + 1)
            docs.append(Document(file, data, lines))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "invalid YAML"
        raise ComposeError(problem, file, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise ComposeError(f"invalid YAML: {e}", file) from None
    except (ValueError, TypeError) as e:  # a constructor refusing a scalar (an unhashable key...)
        raise ComposeError(f"invalid YAML: {e}", file) from None
    finally:
        loader.dispose()
    return docs


def load_file(path: str, shown: str | None = None, loader_class=None) -> list[Document]:
    shown = shown or path
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ComposeError(e.strerror or str(e), shown) from None
    if len(raw) > MAX_BYTES:
        raise ComposeError(f"larger than {MAX_BYTES >> 20} MiB", shown)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ComposeError(f"not UTF-8 ({e.reason} at byte {e.start})", shown) from None
    return load_text(text, shown, loader_class)
