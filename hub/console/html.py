"""Server-rendered HTML: ``string.Template`` files whose values are escaped unless marked safe.

    page = render("campaign.html", name=row["name"], rows=Safe("".join(...)))

Every value is passed through :func:`html.escape` (quotes included, so values may sit in
attributes) unless it is a :class:`Safe`, which only this package builds from escaped parts.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"


class Safe(str):
    """Markup already escaped (or written by us): inserted as it is."""


def esc(value: object) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def join(parts: list[Safe] | tuple[Safe, ...]) -> Safe:
    return Safe("".join(parts))


def tag(name: str, text: object = "", **attrs: object) -> Safe:
    """``<name attrs>text</name>``; attribute names use ``_`` for ``-`` (``data_id``), ``class_`` for class."""
    rendered = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' if v is not True else f" {k.rstrip('_').replace('_', '-')}"
        for k, v in attrs.items()
        if v is not None and v is not False
    )
    return Safe(f"<{name}{rendered}>{esc(text)}</{name}>")


def json_block(element_id: str, data: Any) -> Safe:
    """Data for our script in a non-executed ``<script type="application/json">`` (no ``</`` can close it)."""
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Safe(f'<script type="application/json" id="{esc(element_id)}">{text}</script>')


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(template: str, /, **values: object) -> Safe:
    return Safe(_template(template).substitute({k: esc(v) for k, v in values.items()}))
