"""JSON Schemas written by users, treated as hostile, and validation that stays bounded.

A requester's schema is data from the outside: validating with it must never reach the network
or the file system, never run a backtracking regex, and never take longer than its size
promises. `compile_schema` refuses (`UnsafeSchema`) anything outside these rules and returns a
`SafeValidator`; `instance_issues` then refuses an instance holding NaN/Infinity, or whose size
times the schema's cost (`SafeValidator.cost_per_value`) is over the work budget, before any
validation runs.

- References: only local JSON Pointers (`"#"`, `"#/..."`) in `$ref`, `$dynamicRef` and
  `$recursiveRef`; no `$id` anywhere (it would change the resolution base); `$schema`, when
  given, is the Draft 2020-12 meta-schema. The validator's retriever refuses every URI anyway.
- Size: at most `MAX_SCHEMA_BYTES` serialized and `MAX_SCHEMA_DEPTH` levels of JSON nesting.
- Numbers: no NaN or Infinity anywhere in the document (JSON has no such values).
- Patterns (`pattern`, `patternProperties` keys) are compiled by jsonschema-rs with the Rust
  `regex` crate (`RegexOptions`): linear-time matching, no look-around or backreferences (a
  pattern that needs them is refused).
- `format` is an annotation only (no format assertion runs, so none can do network or heavy
  work).
- Work: every schema node an instance value triggers (in place through `$ref`/`allOf`/...,
  then per nesting level) is counted statically, so a small schema of `$ref`s cannot ask for
  exponential work (a "billion laughs" of `allOf`), nor a recursive one double its work per
  level of the instance. A `$ref` cycle that never descends into the instance is refused.

Validation runs in Rust (jsonschema-rs) on the event loop; the bounds above are what keep one
call to a fraction of a second even on a loaded machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
import orjson

META_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_INSTANCE_DEPTH = 64
"""Deepest instance the cost analysis assumes (the kit refuses deeper request bodies)."""
MAX_COST_PER_VALUE = 5_000
"""Most schema keyword evaluations one instance value may trigger."""
MAX_WORK = 20_000_000
"""Cost per value x instance size units: about a quarter of a second of Rust validation."""
MAX_ANALYSIS_STEPS = 50_000
"""Node x level steps the cost analysis may take (about a tenth of a second)."""
STRING_CHARS_PER_UNIT = 16
REGEX_SIZE_LIMIT = 1 << 20
REGEX_DFA_SIZE_LIMIT = 1 << 20

_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_LIST = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas", "dependencies")
# Applied to every property value / every array item (whatever its key or index).
_EVERY_PROPERTY = ("unevaluatedProperties", "propertyNames")
_EVERY_ITEM = ("contains", "unevaluatedItems")
_DEFINITIONS = ("$defs", "definitions")


class UnsafeSchema(ValueError):
    """The schema breaks one of the rules; `pointer` is where (a JSON Pointer, "" = root)."""

    def __init__(self, reason: str, pointer: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.pointer = pointer

    def __str__(self) -> str:
        return self.reason + (f" at {self.pointer}" if self.pointer else "")


@dataclass(frozen=True)
class InstanceIssue:
    """A reason to refuse an instance before validating it: `path` inside the instance."""

    path: list[str | int]
    msg: str


def _refuse_retrieval(uri: str) -> Any:
    raise ValueError(f"retrieving {uri!r} is not allowed: only local references (#/...)")


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def non_finite_paths(value: Any, *, limit: int = 20) -> list[list[str | int]]:
    """Where NaN or +-Infinity sit inside `value` (a parsed JSON document), at most `limit`."""
    found: list[list[str | int]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack and len(found) < limit:
        item, path = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                found.append(path)
        elif isinstance(item, dict):
            stack.extend((v, [*path, k]) for k, v in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(item))))
    return found


def instance_issues(value: Any, *, cost_per_value: int, limit: int = 20) -> list[InstanceIssue]:
    """Non-finite numbers, and an instance too large for the work budget, in one pass."""
    issues: list[InstanceIssue] = []
    units = 0
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        units += 1
        if isinstance(item, str):
            units += len(item) // STRING_CHARS_PER_UNIT
        elif isinstance(item, float):
            if not math.isfinite(item) and len(issues) < limit:
                issues.append(InstanceIssue(list(path), "must be a finite number"))
        elif isinstance(item, dict):
            for k, v in item.items():
                units += len(k) // STRING_CHARS_PER_UNIT
                stack.append((v, (*path, k)))
        elif isinstance(item, list | tuple):
            stack.extend((v, (*path, i)) for i, v in enumerate(item))
    if units * cost_per_value > MAX_WORK:
        issues.append(
            InstanceIssue(
                [],
                f"is too large to check against this schema (size {units} x schema cost "
                f"{cost_per_value} is over {MAX_WORK})",
            )
        )
    issues.sort(key=lambda i: tuple(str(p) for p in i.path))
    return issues


@dataclass(frozen=True)
class SafeValidator:
    validator: Any  # jsonschema_rs.Draft202012Validator
    cost_per_value: int

    def iter_errors(self, instance: Any) -> Iterator[Any]:
        return self.validator.iter_errors(instance)


def compile_schema(schema: Any) -> SafeValidator:
    """A bounded validator for `schema`, or UnsafeSchema saying what is not allowed."""
    if not isinstance(schema, dict | bool):
        raise UnsafeSchema("a JSON Schema must be an object")
    try:  # size first: every later pass is then over at most MAX_SCHEMA_BYTES
        size = len(orjson.dumps(schema))
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise UnsafeSchema(f"the schema cannot be serialized as JSON: {exc}") from exc
    if size > MAX_SCHEMA_BYTES:
        raise UnsafeSchema(
            f"the schema is {size} bytes of JSON; at most {MAX_SCHEMA_BYTES} are allowed"
        )
    _check_document(schema)
    cost = _cost_per_value(schema)
    try:
        validator = jsonschema_rs.Draft202012Validator(
            schema,
            validate_formats=False,
            retriever=_refuse_retrieval,
            pattern_options=jsonschema_rs.RegexOptions(
                size_limit=REGEX_SIZE_LIMIT, dfa_size_limit=REGEX_DFA_SIZE_LIMIT
            ),
        )
    except jsonschema_rs.ValidationError as exc:
        where = _pointer(list(exc.instance_path))
        if 'is not a "regex"' in exc.message:
            raise UnsafeSchema(
                f"{_first_line(repr(exc.instance))} is not a supported pattern: patterns use "
                "the Rust regex syntax (linear-time; no look-around, no backreferences)",
                where,
            ) from exc
        raise UnsafeSchema(_first_line(exc.message), where) from exc
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        raise UnsafeSchema(_first_line(str(exc))) from exc
    return SafeValidator(validator=validator, cost_per_value=cost)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["invalid schema"])[0][:500]


def _check_document(schema: Any) -> None:
    """Depth, numbers and references, over the whole document (a `$ref` may point anywhere
    in it, so no part is exempt)."""
    stack: list[tuple[Any, list[str | int]]] = [(schema, [])]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_SCHEMA_DEPTH:
            raise UnsafeSchema(f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep")
        if isinstance(item, float) and not math.isfinite(item):
            raise UnsafeSchema("NaN and Infinity are not JSON numbers", _pointer(path))
        if isinstance(item, list | tuple):
            stack.extend((v, [*path, i]) for i, v in enumerate(item))
            continue
        if not isinstance(item, dict):
            continue
        for key, value in item.items():
            if not isinstance(key, str):
                raise UnsafeSchema("object keys must be strings", _pointer(path))
            here = [*path, key]
            if key in _REF_KEYS and isinstance(value, str) and not _is_local(value):
                raise UnsafeSchema(
                    f"{key} {value[:200]!r} is not allowed: only local references "
                    '("#" or "#/...") may be used',
                    _pointer(here),
                )
            if key == "$id" and isinstance(value, str):
                raise UnsafeSchema(
                    "$id is not allowed (it changes how references resolve)", _pointer(here)
                )
            if key == "$schema" and isinstance(value, str) and value.rstrip("#") != META_SCHEMA:
                raise UnsafeSchema(f"$schema must be {META_SCHEMA!r} (or left out)", _pointer(here))
            stack.append((value, here))


def _is_local(ref: str) -> bool:
    return ref == "#" or ref.startswith("#/")


def _resolve(root: Any, ref: str) -> Any:
    node = root
    if ref == "#":
        return node
    for raw in ref[2:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise UnsafeSchema(f"reference {ref[:200]!r} does not point inside the schema")
    return node


def _is_schema(value: Any) -> bool:
    return isinstance(value, dict | bool)


class _Node:
    """One schema object: what it applies in place, and what it applies to child values."""

    __slots__ = (
        "every_item",
        "every_property",
        "in_place",
        "named",
        "other",
        "prefix",
        "rest",
        "weight",
    )

    def __init__(self) -> None:
        self.in_place: list[int] = []
        self.named: list[int] = []  # properties: one of them per property name
        self.other: list[int] = []  # additionalProperties: names not in properties
        self.every_property: list[int] = []  # patternProperties (any may match), ...
        self.prefix: list[int] = []  # prefixItems: one per index
        self.rest: list[int] = []  # items after the prefix
        self.every_item: list[int] = []  # contains, unevaluatedItems
        self.weight = 1

    def children(self) -> list[int]:
        return [
            *self.named,
            *self.other,
            *self.every_property,
            *self.prefix,
            *self.rest,
            *self.every_item,
        ]


def _cost_per_value(schema: Any) -> int:
    """An upper bound of the keyword evaluations one instance value can trigger.

    G_0(s): evaluations at the value `s` is applied to (s's own keywords, weighted, plus what
    it applies in place). G_h(s): evaluations at one value h levels below; each schema node
    picks its worst key or index, so properties of a tree that recurse through different keys
    stay linear while two branches recursing through the same key are seen doubling."""
    nodes: dict[int, _Node] = {}
    objects: dict[int, Any] = {}  # keeps every node alive, so ids stay unique
    pending: list[Any] = []

    def add(value: Any) -> int | None:
        if not _is_schema(value):
            return None
        key = id(value)
        if key not in objects:
            objects[key] = value
            pending.append(value)
        return key

    add(schema)
    while pending:
        item = pending.pop()
        key = id(item)
        if key in nodes:
            continue
        node = nodes[key] = _Node()
        if not isinstance(item, dict):
            continue
        enum = item.get("enum")
        required = item.get("required")
        node.weight = (
            1
            + len(item)
            + (len(enum) if isinstance(enum, list) else 0)
            + (len(required) if isinstance(required, list) else 0)
        )
        for ref_key in _REF_KEYS:
            ref = item.get(ref_key)
            if isinstance(ref, str) and _is_local(ref):
                target = add(_resolve(schema, ref))
                if target is not None:
                    node.in_place.append(target)
        for name in _IN_PLACE_ONE:
            if (c := add(item.get(name))) is not None:
                node.in_place.append(c)
        for name in _IN_PLACE_LIST:
            if isinstance(item.get(name), list):
                node.in_place.extend(c for v in item[name] if (c := add(v)) is not None)
        for name in _IN_PLACE_MAP:
            if isinstance(item.get(name), dict):
                node.in_place.extend(c for v in item[name].values() if (c := add(v)) is not None)
        for name in _DEFINITIONS:  # not applied, but must be walked for references
            if isinstance(item.get(name), dict):
                for v in item[name].values():
                    add(v)
        named, other = node.named, node.other
        if isinstance(item.get("properties"), dict):
            named.extend(c for v in item["properties"].values() if (c := add(v)) is not None)
        if (c := add(item.get("additionalProperties"))) is not None:
            other.append(c)
        if isinstance(item.get("patternProperties"), dict):
            node.every_property.extend(
                c for v in item["patternProperties"].values() if (c := add(v)) is not None
            )
        for name in _EVERY_PROPERTY:
            if (c := add(item.get(name))) is not None:
                node.every_property.append(c)
        prefix, rest = node.prefix, node.rest
        if isinstance(item.get("prefixItems"), list):
            prefix.extend(c for v in item["prefixItems"] if (c := add(v)) is not None)
        items = item.get("items")
        if isinstance(items, list):  # the pre-2020 form
            prefix.extend(c for v in items if (c := add(v)) is not None)
        elif (c := add(items)) is not None:
            rest.append(c)
        if (c := add(item.get("additionalItems"))) is not None:
            rest.append(c)
        for name in _EVERY_ITEM:
            if (c := add(item.get(name))) is not None:
                node.every_item.append(c)
    order = _in_place_order(nodes)
    position = {key: i for i, key in enumerate(order)}
    child_parents: dict[int, set[int]] = {}
    in_place_parents: dict[int, set[int]] = {}
    for key, node in nodes.items():
        for c in node.children():
            child_parents.setdefault(c, set()).add(key)
        for c in node.in_place:
            in_place_parents.setdefault(c, set()).add(key)
    cap = MAX_COST_PER_VALUE + 1
    budget = MAX_ANALYSIS_STEPS
    previous: dict[int, int] = {}  # nonzero values only
    worst = 0
    for depth in range(MAX_INSTANCE_DEPTH + 1):
        if depth == 0:
            todo = order
        else:  # only what can be nonzero: parents of last level's values, and their in-place
            seeds = {p for c in previous for p in child_parents.get(c, ())}
            stack = list(seeds)
            while stack:
                for p in in_place_parents.get(stack.pop(), ()):
                    if p not in seeds:
                        seeds.add(p)
                        stack.append(p)
            todo = sorted(seeds, key=position.__getitem__)
        budget -= len(todo)
        if budget < 0:
            raise UnsafeSchema(
                "the schema is too complex to analyse (too many recursive references)"
            )
        current: dict[int, int] = {}
        for key in todo:  # in-place children come before their parents
            node = nodes[key]
            if depth == 0:
                total = node.weight
            else:
                get = previous.get
                as_object = sum(get(c, 0) for c in node.every_property) + max(
                    [0, *(get(c, 0) for c in node.named), sum(get(c, 0) for c in node.other)]
                )
                as_item = sum(get(c, 0) for c in node.every_item) + max(
                    [0, *(get(c, 0) for c in node.prefix), sum(get(c, 0) for c in node.rest)]
                )
                total = max(as_object, as_item)
            total += sum(current.get(c, 0) for c in node.in_place)
            if total:
                current[key] = min(total, cap)
        here = current.get(id(schema), 0)
        if here >= cap:
            raise UnsafeSchema(
                "the schema asks for too much work per answer value (references or "
                f"combinators that multiply; more than {MAX_COST_PER_VALUE} evaluations)"
            )
        worst = max(worst, here)
        if current == previous or not current:
            break  # a fixed point: deeper levels cost the same (or nothing)
        previous = current
    return worst


def _in_place_order(nodes: dict[int, _Node]) -> list[int]:
    """Nodes ordered so that every in-place child precedes its parent; a cycle (a `$ref`
    loop that never descends into the instance) is refused."""
    state: dict[int, int] = {}  # 1 visiting, 2 done
    order: list[int] = []
    for start in nodes:
        if start in state:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            key, i = stack[-1]
            children = nodes[key].in_place
            if i < len(children):
                stack[-1] = (key, i + 1)
                child = children[i]
                seen = state.get(child)
                if seen == 1:
                    raise UnsafeSchema(
                        "the schema has a reference cycle that never descends into the answer "
                        "(it would never finish)"
                    )
                if seen is None:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                stack.pop()
                state[key] = 2
                order.append(key)
    return order
