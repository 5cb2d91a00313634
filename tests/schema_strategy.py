"""Hypothesis strategies for the JSON Schema subset that gateway/web/openapi.py writes.

Every value drawn is checked against the schema with ``jsonschema`` (a value the generator
got wrong is discarded, never sent), so what a test sends is valid by the document.
Supported: type (one or a list), const, enum, properties, required, additionalProperties
(false or a schema), propertyNames.pattern, min/maxProperties, items, min/maxItems,
min/maxLength, pattern, minimum/maximum, oneOf/anyOf, allOf of required-alternatives, not.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

MAX_LIST = 4

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
ANY_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=MAX_LIST), st.dictionaries(st.text(max_size=6), inner,
                                                        max_size=MAX_LIST)), max_leaves=12)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid by ``schema`` (its $refs resolved already)."""
    return _draw(schema).filter(Draft202012Validator(schema).is_valid)


def _draw(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if schema.get("not") == {}:
        return st.nothing()
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            rest = {k: v for k, v in schema.items() if k != combinator}
            return st.one_of(*(_draw({**rest, **branch}) for branch in schema[combinator]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of(*(_draw({**schema, "type": k}) for k in kind))
    if kind is None:
        return _object(schema) if "properties" in schema else ANY_JSON
    return {"object": _object, "array": _array, "string": _string, "integer": _integer,
            "number": _number, "boolean": lambda _: st.booleans(),
            "null": lambda _: st.none()}[kind](schema)


def _integer(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.integers(schema.get("minimum"), schema.get("maximum"))


def _number(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    return st.one_of(_integer(schema), st.floats(low, high, allow_nan=False,
                                                 allow_infinity=False))


def _string(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 12))


def _array(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    items = _draw(schema["items"]) if "items" in schema else ANY_JSON
    low = schema.get("minItems", 0)
    return st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", MAX_LIST),
                                                               MAX_LIST)))


@st.composite
def _object(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    forbidden: set[str] = set()
    for part in schema.get("allOf", []):  # e.g. oneOf [{required: [a]}, {required: [b]}]
        for combinator in ("oneOf", "anyOf"):
            if combinator in part:
                chosen = draw(st.sampled_from(part[combinator]))
                required |= set(chosen.get("required", []))
                if combinator == "oneOf":
                    forbidden |= {k for b in part[combinator] if b is not chosen
                                  for k in b.get("required", [])} - required
    optional = sorted(set(properties) - required - forbidden)
    keys = sorted(required) + draw(st.lists(st.sampled_from(optional), unique=True,
                                            max_size=len(optional))) if optional else sorted(
        required)
    out = {key: draw(_draw(properties.get(key, {}))) for key in keys}
    extra = schema.get("additionalProperties", True)
    if not properties and extra is not False:
        names = (st.from_regex(schema["propertyNames"]["pattern"], fullmatch=True)
                 if "propertyNames" in schema else st.text(max_size=8))
        values = _draw(extra) if isinstance(extra, dict) else ANY_JSON
        low = schema.get("minProperties", 0)
        out.update(draw(st.dictionaries(names, values, min_size=low,
                                        max_size=max(low, min(schema.get("maxProperties", 4),
                                                              4)))))
    return out
