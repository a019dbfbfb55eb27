"""Single-item representations: XNAT XML documents and ItemJSON (xnat-api.md §3.2).

``item_response(request, item)`` answers ``format=json`` with ItemJSON
(``{"items":[{"children":[...],"meta":{...},"data_fields":{...}}]}``), ``format=html``
with a small page, and XML otherwise (item resources offer no JSON by negotiation).
``Item`` describes one element: xsi type, XML tag, attributes (also data fields),
child text elements, and nested child items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

XML_NS = (
    'xmlns:xnat="http://nrg.wustl.edu/xnat" '
    'xmlns:xdat="http://nrg.wustl.edu/security" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


@dataclass
class Item:
    xsi_type: str
    tag: str
    attributes: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    children: list[tuple[str, list[Item]]] = field(default_factory=list)
    insert_date: str = ""

    def data_fields(self) -> dict[str, str]:
        out = {k: v for k, v in self.attributes.items() if v != ""}
        out.update({k: v for k, v in self.fields.items() if v != ""})
        return out

    def to_item_json(self) -> dict[str, Any]:
        return {
            "children": [
                {"field": name, "items": [c.to_item_json() for c in items]}
                for name, items in self.children
                if items
            ],
            "meta": {
                "create_event_id": 1,
                "xsi:type": self.xsi_type,
                "isHistory": False,
                "start_date": self.insert_date,
            },
            "data_fields": self.data_fields(),
        }

    def to_xml(self, *, root: bool = True) -> str:
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in self.attributes.items() if v != "")
        if root:
            attrs += f" {XML_NS}"
        parts = [f"<{self.tag}{attrs}>"]
        for key, value in self.fields.items():
            if value != "":
                parts.append(f"<xnat:{key}>{escape(value)}</xnat:{key}>")
        for name, items in self.children:
            if not items:
                continue
            # A single-valued child (PI, demographics) is its own element; lists get a wrapper.
            wrap = any(c.tag != f"xnat:{name}" for c in items)
            if wrap:
                parts.append(f"<xnat:{name}>")
            parts.extend(c.to_xml(root=False) for c in items)
            if wrap:
                parts.append(f"</xnat:{name}>")
        parts.append(f"</{self.tag}>")
        body = "".join(parts)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body) if root else body


def item_response(request: web.Request, item: Item) -> web.Response:
    fmt = (request.query.get("format") or "").lower()
    if fmt == "json":
        return web.Response(
            text=json.dumps({"items": [item.to_item_json()]}), content_type="application/json"
        )
    if fmt == "html":
        rows = "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
            for k, v in item.data_fields().items()
        )
        return web.Response(
            text=f"<html><body><table>{rows}</table></body></html>", content_type="text/html"
        )
    return web.Response(text=item.to_xml(), content_type="text/xml")
