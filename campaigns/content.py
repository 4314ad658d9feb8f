"""Campaign content: per-locale variants of a notification, personalised per user.

    {"default": {notification}, "locales": {"fr": {notification}, "pt-BR": {notification}}}

A variant is a REST ``notification`` object (see :mod:`push.message`).  Its ``title``, ``body``
and ``data`` values may hold ``{{name}}`` or ``{{name|fallback}}``: the user's attribute ``name``,
else the fallback (empty when none is given).  A user gets the variant of their locale (``pt-BR``),
else of its language (``pt``), else ``default``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from campaigns.errors import CampaignError
from config import bodies
from config.errors import Code
from push.errors import PushError
from push.message import PushMessage

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z0-9_]{1,64})\s*(?:\|([^{}]*))?\}\}")
LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}$")
MAX_LOCALES = 100
TEMPLATED = ("title", "body")
#: What a template may grow to; the content is checked with every placeholder this long.
PLACEHOLDER_ROOM = 40


_VARIANT: bodies.Schema = {
    "type": "object",
    "description": "a notification object (see NewNotification); title, body and data values may use {{attr|fallback}}",
}
#: The OpenAPI component CampaignContent (checked by :func:`validate`).
SCHEMA = bodies.strict_object(
    {"default": _VARIANT, "locales": {"type": "object", "additionalProperties": _VARIANT}}, ["default"]
)


def normal_locale(locale: str) -> str:
    return locale.replace("_", "-").lower()


def validate(content: object, field: str = "content") -> dict[str, Any]:
    """Check the variants; raise ``CampaignError`` naming every bad field (``content.locales.fr.title``)."""
    if not isinstance(content, Mapping):
        raise CampaignError(Code.INVALID_PAYLOAD, f"{field}: must be an object", fields={field: "must be an object"})
    problems: dict[str, str] = {f"{field}.{k}": "unknown field" for k in content if k not in ("default", "locales")}
    variants: dict[str, object] = {"default": content.get("default")}
    locales = content.get("locales") or {}
    if not isinstance(locales, Mapping) or len(locales) > MAX_LOCALES:
        problems[f"{field}.locales"] = f"must be an object of at most {MAX_LOCALES} locales"
        locales = {}
    for locale, variant in locales.items():
        if not isinstance(locale, str) or not LOCALE.match(locale):
            problems[f"{field}.locales.{locale}"] = "is not a locale such as fr or pt-BR"
        else:
            variants[f"locales.{locale}"] = variant
    for name, variant in variants.items():
        _check_variant(variant, f"{field}.{name}", problems)
    if problems:
        first = next(iter(problems))
        raise CampaignError(Code.INVALID_PAYLOAD, f"{first}: {problems[first]}", fields=problems)
    return dict(content)


def _check_variant(variant: object, where: str, problems: dict[str, str]) -> None:
    if not isinstance(variant, Mapping):
        problems[where] = "is required: a notification object"
        return
    for name in TEMPLATED:
        value = variant.get(name)
        if isinstance(value, str) and _stray_braces(value):
            problems[f"{where}.{name}"] = "has a {{ without a matching }} (write {{name}} or {{name|fallback}})"
    data = variant.get("data")
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(value, str) and _stray_braces(value):
                problems[f"{where}.data.{key}"] = "has a {{ without a matching }}"
    try:
        PushMessage.from_json(_fill(variant, lambda name, fallback: "x" * PLACEHOLDER_ROOM))
    except PushError as exc:
        for name, problem in exc.fields.items():
            problems[where + name.removeprefix("notification")] = problem


def _stray_braces(text: str) -> bool:
    rest = TEMPLATE.sub("", text)
    return "{{" in rest or "}}" in rest


def variant_for(content: Mapping[str, Any], locale: str | None) -> Mapping[str, Any]:
    """The variant for ``locale``: exact, then its language, then ``default``."""
    locales: Mapping[str, Any] = content.get("locales") or {}
    if locale:
        wanted = normal_locale(locale)
        by_locale = {normal_locale(k): v for k, v in locales.items()}
        for key in (wanted, wanted.split("-")[0]):
            if key in by_locale:
                return dict(by_locale[key])
    default: Mapping[str, Any] = content["default"]
    return default


def render(content: Mapping[str, Any], locale: str | None, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The user's notification object: their variant with every ``{{name}}`` filled in."""

    def value(name: str, fallback: str | None) -> str:
        found = attributes.get(name)
        if found is None:
            return fallback or ""
        if isinstance(found, bool):
            return "true" if found else "false"
        return str(found)

    return _fill(variant_for(content, locale), value)


def message(content: Mapping[str, Any], locale: str | None, attributes: Mapping[str, Any]) -> PushMessage:
    """Render and validate; ``PushError`` when the personalised payload is too large."""
    return PushMessage.from_json(render(content, locale, attributes))


def _fill(variant: Mapping[str, Any], value: Any) -> dict[str, Any]:
    def sub(text: str) -> str:
        return TEMPLATE.sub(lambda m: value(m.group(1), m.group(2)), text)

    filled = dict(variant)
    for name in TEMPLATED:
        if isinstance(filled.get(name), str):
            filled[name] = sub(filled[name])
    data = filled.get("data")
    if isinstance(data, Mapping):
        filled["data"] = {k: sub(v) if isinstance(v, str) else v for k, v in data.items()}
    return filled
