"""Small values that satisfy a JSON schema: function-call arguments and ``response_format`` answers.

:func:`sample` walks a schema (``$ref`` to ``$defs`` / ``definitions``, ``allOf`` / ``anyOf`` / ``oneOf``,
``const``, ``enum``, ``default``, ``examples``, type lists, string formats and lengths, numeric bounds, array
and object sizes) and returns the simplest instance it can: the required properties of objects, one item per
array unless ``minItems`` asks for more. ``preferred`` values (a scenario's ``city="Seattle"``) are used for
the top-level properties they fit. Unknown keywords (``pattern``, ``not``...) are ignored.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = ["sample", "sample_arguments"]

_MAX_DEPTH = 12
_STRING_FORMATS = {
    "date-time": "2025-01-01T12:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}
_PLACES = ("city", "location", "place", "town", "country")


def sample_arguments(parameters: Any, preferred: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Arguments for a function whose ``parameters`` schema is given (an object schema)."""
    if not isinstance(parameters, dict):
        return dict(preferred or {})
    value = sample(parameters, preferred=preferred)
    return value if isinstance(value, dict) else {}


def sample(schema: Any, root: Any = None, name: str = "", preferred: Optional[Mapping[str, Any]] = None) -> Any:
    """A value valid for ``schema`` (``root`` resolves ``$ref``; ``name`` hints at a string's content)."""
    return _Sampler(root if root is not None else schema).value(schema, name, 0, preferred or {})


class _Sampler:
    def __init__(self, root: Any) -> None:
        self.root = root

    def resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < _MAX_DEPTH:
            target: Any = self.root
            for part in schema["$ref"].lstrip("#").strip("/").split("/"):
                if not part:
                    continue
                target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else rest
            seen += 1
        return schema

    def value(self, schema: Any, name: str, depth: int, preferred: Mapping[str, Any]) -> Any:
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return "example" if schema is not False else None
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        if "default" in schema and schema["default"] is not None:
            return schema["default"]
        if isinstance(schema.get("examples"), list) and schema["examples"]:
            return schema["examples"][0]
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                if isinstance(part, dict):
                    merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
                    merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                    merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
            return self.value(merged, name, depth + 1, preferred)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                usable = [o for o in options if self.resolve(o) != {"type": "null"}] or options
                return self.value(usable[0], name, depth + 1, preferred)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self.object(schema, depth, preferred)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "integer":
            return int(_number(schema, 1))
        if kind == "number":
            return float(_number(schema, 1.0))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema, name)

    def object(self, schema: dict[str, Any], depth: int, preferred: Mapping[str, Any]) -> dict[str, Any]:
        found = schema.get("properties")
        properties: dict[str, Any] = found if isinstance(found, dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        out: dict[str, Any] = {}
        for key in required:
            if key in preferred and _fits(self.resolve(properties.get(key, {})), preferred[key]):
                out[key] = preferred[key]
            else:
                out[key] = self.value(properties.get(key, {}), key, depth + 1, {})
        for key, value in preferred.items():  # optional properties the caller would like to see
            if key not in out and key in properties and _fits(self.resolve(properties[key]), value):
                out[key] = value
        return out

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        count = max(1, int(schema.get("minItems") or 0))
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        found = schema.get("prefixItems")
        prefix: list[Any] = found if isinstance(found, list) else []
        items = schema.get("items", {})
        singular = name[:-1] if name.endswith("s") else name
        values = [self.value(p, singular, depth + 1, {}) for p in prefix[:count]]
        while len(values) < count:
            values.append(self.value(items if isinstance(items, dict) else {}, singular, depth + 1, {}))
        return values


def _number(schema: dict[str, Any], fallback: float) -> float:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and not isinstance(schema["exclusiveMinimum"], bool):
        low = schema["exclusiveMinimum"] + 1
    if isinstance(schema.get("exclusiveMaximum"), (int, float)) and not isinstance(schema["exclusiveMaximum"], bool):
        high = schema["exclusiveMaximum"] - 1
    value = fallback
    if isinstance(low, (int, float)) and value < low:
        value = low
    if isinstance(high, (int, float)) and value > high:
        value = high
    return value


def _string(schema: dict[str, Any], name: str) -> str:
    text = _STRING_FORMATS.get(str(schema.get("format")), "")
    if not text:
        lowered = name.lower()
        text = "Seattle" if any(p in lowered for p in _PLACES) else "example"
    minimum, maximum = schema.get("minLength"), schema.get("maxLength")
    if isinstance(minimum, int) and len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    if isinstance(maximum, int) and len(text) > maximum:
        text = text[:maximum]
    return text


def _fits(schema: Any, value: Any) -> bool:
    """A light check that ``value`` suits ``schema`` (type and enum), for preferred values."""
    if not isinstance(schema, dict):
        return True
    if isinstance(schema.get("enum"), list):
        return value in schema["enum"]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    if not kinds:
        return True
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    return any(checks.get(k, lambda v: False)(value) for k in kinds)
