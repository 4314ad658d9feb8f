"""Request bodies declared once: each field's JSON Schema beside the check that enforces it.

A :class:`Body` is the one statement of a request body's contract.  From it come

- the fields a body may carry (anything else is refused: request schemas are strict),
- the validator (:meth:`Body.parse`, each field's check in declaration order, raising
  ``invalid_payload`` / ``too_large`` naming the field), and
- the OpenAPI component (:meth:`Body.schema`), served in ``/api/v1/openapi.json``.

So adding a field to a body is one line here or in the domain that owns the body.  Nested
objects a domain parses itself (a campaign's schedule, a notification) are fields whose check
hands the value on unchanged and whose schema references their own component.

Plain JSON Schema helpers (:func:`nullable`, :func:`strict_object`) live here too, so domains can
declare their bodies without importing the hub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from config import payloads
from config.errors import Code

Schema = dict[str, Any]
#: A field's check: (the body, the field's name) → the value to use, or raise naming the field.
Check = Callable[[dict[str, Any], str], Any]

#: An id a request may carry (room ids, user ids, client ids in bodies and member paths).
ID: Schema = {"type": "string", "pattern": payloads.ID_PATTERN.pattern}
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
OPEN_OBJECT: Schema = {"type": "object"}


def ref(name: str) -> Schema:
    """A reference to the OpenAPI component ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def strict_object(properties: dict[str, Schema], required: Iterable[str] = (), **extra: Any) -> Schema:
    """An object with exactly these properties (those in ``required`` must be present)."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    needed = list(required)
    unknown = set(needed) - set(properties)
    if unknown:
        raise ValueError(f"required properties without a schema: {sorted(unknown)}")
    if needed:
        schema["required"] = needed
    return schema


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a body: its schema, its check, and whether the schema lists it as required."""

    schema: Schema
    check: Check
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A request body: its fields in the order they are checked, and the component's description."""

    fields: dict[str, Field]
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def refuse_unknown(self, data: dict[str, Any], *, without: Iterable[str] = ()) -> dict[str, Any]:
        """``data`` when it has no field outside the declaration (less ``without``), and its text can
        be stored; else ``invalid_payload`` naming the culprits."""
        left_out = set(without)
        payloads.only(data, tuple(name for name in self.fields if name not in left_out))
        return payloads.storable(data)

    def parse(self, data: dict[str, Any], *, only: Iterable[str] | None = None) -> dict[str, Any]:
        """Every declared field (or those in ``only``) checked, by name: absent ones as their check
        answers for them (None or a default)."""
        wanted = set(self.fields if only is None else only)
        return {name: field.check(data, name) for name, field in self.fields.items() if name in wanted}

    def schema(self, *, partial: bool = False) -> Schema:
        """The OpenAPI component; ``partial`` (a PATCH body) requires nothing."""
        required = () if partial else [name for name, field in self.fields.items() if field.required]
        extra = {"description": self.description} if self.description else {}
        return strict_object({name: field.schema for name, field in self.fields.items()}, required, **extra)


# --- Fields of the usual kinds (the checks of config.payloads, with their schemas) ---


def text(max_length: int, *, required: bool = False, too_long: Code = Code.INVALID_PAYLOAD, **schema: Any) -> Field:
    """A non-blank string of at most ``max_length`` characters (null or absent unless required)."""
    shape: Schema = {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": r"\S", **schema}

    def check(data: dict[str, Any], name: str) -> str | None:
        return payloads.text(data, name, max_length, required=required, too_long=too_long)

    return Field(shape if required else nullable(shape), check, required)


def identifier(*, required: bool = False, **schema: Any) -> Field:
    shape = {**ID, **schema}

    def check(data: dict[str, Any], name: str) -> str | None:
        return payloads.identifier(data, name, required=required)

    return Field(shape if required else nullable(shape), check, required)


def integer(*, minimum: int = 0, maximum: int | None = None, default: int | None = None) -> Field:
    """A whole number in range (null or absent: ``default``)."""
    shape: Schema = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        shape["maximum"] = maximum

    bound = payloads.MAX_INTEGER if maximum is None else maximum

    def check(data: dict[str, Any], name: str) -> int | None:
        return payloads.integer(data, name, minimum=minimum, maximum=bound, default=default)

    return Field(nullable(shape), check)


def choice(options: tuple[str, ...], *, required: bool = False, **schema: Any) -> Field:
    shape = {"enum": list(options), **schema}

    def check(data: dict[str, Any], name: str) -> str | None:
        return payloads.choice(data, name, options, required=required)

    return Field(shape if required else nullable(shape), check, required)


def timestamp() -> Field:
    """An ISO 8601 time with a timezone, or null."""
    return Field(nullable(TIMESTAMP), payloads.timestamp)


def meta() -> Field:
    """A free-form object of at most ``MAX_META_BYTES`` as JSON (larger: ``too_large``), or null."""
    shape = {**OPEN_OBJECT, "description": f"at most {payloads.MAX_META_BYTES} bytes as JSON (else 413)"}
    return Field(nullable(shape), payloads.meta)


def id_list(*, max_items: int = 1000) -> Field:
    def check(data: dict[str, Any], name: str) -> list[str]:
        return payloads.id_list(data, name, max_items=max_items)

    return Field({"type": "array", "items": ID, "maxItems": max_items}, check)


def passed_on(schema: Schema, *, required: bool = False) -> Field:
    """A value its domain checks itself (a filter, a notification): handed on as it is; when
    ``required``, absent or null is ``invalid_payload``."""

    def check(data: dict[str, Any], name: str) -> Any:
        value = data.get(name)
        if value is None and required:
            raise payloads.invalid(name, "is required")
        return value

    return Field(schema, check, required)
