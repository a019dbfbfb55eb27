"""XFT table rendering (xnat-api.md §1.2-1.4).

API (stable):

* ``Table(columns, rows, meta=None, column_props=None)`` — ``rows`` are lists of
  strings in column order (use ``Table.from_dicts``); ``meta`` holds the keys an
  endpoint emits inside ``ResultSet`` after ``Result`` (``totalRecords``, ``title``…),
  in order; ``column_props`` is the ``Columns`` list written before ``Result``.
* ``render_table(request, table) -> web.Response`` — honours ``format=json|xml|csv|
  html|txt`` (default by ``Accept``: JSON first, as XNAT's list resources register
  JSON, HTML, XML). Every JSON value is a string.
* ``query_table(request, records, *, pk, defaults, shortcuts, uri=True,
  title=None, total=True) -> Table`` — QueryOrganizer listings: ``columns=`` (comma
  list; ``DEFAULT``/absent → defaults; unknown names skipped; root PK first and
  ``URI`` last), filters (``?label=S1,S2``, ``*``/``%`` wildcards, ``a-b`` ranges on
  date columns), ``sortBy``/``sortOrder``, ``offset``/``limit`` paging (then no
  ``totalRecords``). ``records`` are dicts with every shortcut as a string key and,
  when ``uri`` is true, a ``URI`` key.
* ``parse_bool(value)`` — XNAT's ``isQueryVariableTrue`` (present and not false/0).
* ``wildcard_match(pattern, text)`` — the filters' ``*``/``%`` matching, in linear time
  (never a regex built from the query).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from aiohttp import web

from xnat_tui.sandbox.errors import xnat_error

RESERVED_PARAMS = frozenset(
    {
        "format",
        "columns",
        "offset",
        "limit",
        "sortBy",
        "sortOrder",
        "XNAT_CSRF",
        "permissions",
        "dataType",
        "restrict",
        "event_reason",
        "event_type",
        "event_action",
        "event_comment",
        "accept-not-found",
        "contents",
        "inbody",
        "req_format",
        "file_stats",
    }
)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    meta: dict[str, str] = field(default_factory=dict)
    column_props: list[dict[str, str]] | None = None

    @classmethod
    def from_dicts(
        cls,
        columns: Sequence[str],
        records: Iterable[Mapping[str, object]],
        meta: Mapping[str, str] | None = None,
        column_props: list[dict[str, str]] | None = None,
    ) -> Table:
        rows = [[cell(rec.get(c)) for c in columns] for rec in records]
        return cls(list(columns), rows, dict(meta or {}), column_props)

    def dicts(self) -> list[dict[str, str]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def cell(value: object) -> str:
    """XFTTable's string rendering: NULL → ``""``, booleans lower-case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_bool(value: str | None) -> bool:
    return value is not None and value.lower() not in ("false", "0")


def requested_format(request: web.Request, default: str = "json") -> str:
    fmt = request.query.get("format")
    if fmt:
        return fmt.lower()
    accept = request.headers.get("Accept", "")
    if not accept or "*/*" in accept or "json" in accept:
        return default
    if "text/html" in accept:
        return "html"
    if "xml" in accept:
        return "xml"
    if "text/csv" in accept:
        return "csv"
    return default


def render_table(request: web.Request, table: Table, *, default: str = "json") -> web.Response:
    fmt = requested_format(request, default)
    if fmt == "json":
        return web.Response(text=to_json(table), content_type="application/json")
    if fmt == "xml":
        return web.Response(text=to_xml(table), content_type="text/xml")
    if fmt == "csv":
        return web.Response(text=to_csv(table), content_type="text/csv")
    if fmt == "html":
        return web.Response(text=to_html(table), content_type="text/html")
    if fmt in ("txt", "text"):
        return web.Response(text=to_csv(table, delimiter="\t"), content_type="text/plain")
    # XNAT parses anything else as a media type it cannot produce.
    raise xnat_error(415, f"Unsupported format: {fmt}")


def to_json(table: Table) -> str:
    result: dict[str, object] = {}
    if table.column_props:
        result["Columns"] = table.column_props
    result["Result"] = table.dicts()
    for key, value in table.meta.items():
        result[key] = value
    return json.dumps({"ResultSet": result})


def to_xml(table: Table) -> str:
    attrs = "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in table.meta.items())
    out = [f"<ResultSet{attrs}><results><columns>"]
    out.extend(f"<column>{escape(c)}</column>" for c in table.columns)
    out.append("</columns>\n<rows>")
    for row in table.rows:
        out.append("<row>" + "".join(f"<cell>{escape(v)}</cell>" for v in row) + "</row>\n")
    out.append("</rows></results></ResultSet>")
    return "".join(out)


def to_csv(table: Table, delimiter: str = ",") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return buf.getvalue()


def to_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in table.rows
    )
    return f"<html><body><table><tr>{head}</tr>{body}</table></body></html>"


# ---- QueryOrganizer listings --------------------------------------------------------


def wildcard_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` in full, ``*`` and ``%`` standing for any run.

    XNAT's listing filters know no other wildcard. The literal pieces between wildcards
    are found left to right with ``str.find`` (the leftmost fit is always the right one
    when every wildcard matches any run), so the time grows with the text and the
    pattern, never exponentially: a regex such as ``.*.*.*!`` built from a query value
    backtracks for ever on ``label=***…*!`` and blocked the event loop.
    """
    parts = _WILDCARD.split(pattern)
    if len(parts) == 1:
        return text == pattern
    first, *middle, last = parts
    if len(first) + len(last) > len(text) or not (text.startswith(first) and text.endswith(last)):
        return False
    pos, end = len(first), len(text) - len(last)
    for piece in middle:
        if piece:
            found = text.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
    return True


_WILDCARD = re.compile(r"[*%]")


_DATE = r"(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}|\d{8})"
_DATE_RANGE = re.compile(rf"\A{_DATE}?-{_DATE}?\Z")


def _norm_date(text: str) -> str:
    """``2024-01-31``, ``01/31/2024`` or ``20240131`` → ``20240131``."""
    if "/" in text:
        month, day, year = text.split("/")
        return f"{year}{int(month):02d}{int(day):02d}"
    return text.replace("-", "")


def _date_range(text: str) -> tuple[str, str] | None:
    match = _DATE_RANGE.match(text)
    if match is None or not (match.group(1) or match.group(2)):
        return None
    low, high = match.group(1), match.group(2)
    return (_norm_date(low) if low else "", _norm_date(high) if high else "")


def _matches(actual: str, wanted: str, *, is_date: bool) -> bool:
    for alternative in wanted.split(","):
        alternative = alternative.strip()
        bounds = _date_range(alternative) if is_date else None
        if bounds is not None:
            value = _norm_date(actual[:10]) if actual else ""
            low, high = bounds
            if value and (not low or value >= low) and (not high or value <= high):
                return True
            continue
        if wildcard_match(alternative, actual):
            return True
    return False


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return max(0, int(raw))
    except ValueError:
        raise xnat_error(400, f"Invalid {name} value: {raw}") from None


def choose_columns(
    requested: str | None, *, pk: str, defaults: Sequence[str], shortcuts: Iterable[str]
) -> list[str]:
    known = {s.lower(): s for s in shortcuts}
    if not requested or requested.strip().upper() == "DEFAULT":
        names = list(defaults)
    else:
        names = []
        for raw in requested.split(","):
            name = known.get(raw.strip().lower())
            if name is not None and name not in names and name != "URI":
                names.append(name)
    if pk in names:
        names.remove(pk)
    return [pk, *names]


def query_table(
    request: web.Request,
    records: Sequence[Mapping[str, str]],
    *,
    pk: str,
    defaults: Sequence[str],
    shortcuts: Iterable[str],
    uri: bool = True,
    title: str | None = None,
    total: bool = True,
    date_columns: Iterable[str] = ("date", "insert_date", "last_modified"),
) -> Table:
    shortcut_list = list(shortcuts)
    known = {s.lower(): s for s in shortcut_list}
    dates = set(date_columns)
    rows = list(records)
    for key, value in request.query.items():
        if key in RESERVED_PARAMS:
            continue
        name = known.get(key.lower())
        if name is None:
            continue
        rows = [r for r in rows if _matches(r.get(name, ""), value, is_date=name in dates)]
    sort_by = request.query.get("sortBy")
    if sort_by and known.get(sort_by.lower()):
        col = known[sort_by.lower()]
        rows.sort(
            key=lambda r: r.get(col, ""),
            reverse=request.query.get("sortOrder", "").upper() == "DESC",
        )
    offset = _int_param(request, "offset")
    limit = _int_param(request, "limit")
    paged = offset is not None or limit is not None
    count = len(rows)
    if paged:
        start = offset or 0
        rows = rows[start : None if limit is None else start + limit]
    columns = choose_columns(
        request.query.get("columns"), pk=pk, defaults=defaults, shortcuts=shortcut_list
    )
    if uri:
        columns.append("URI")
    meta: dict[str, str] = {}
    if title is not None:
        meta["title"] = title
    if total and not paged:
        meta["totalRecords"] = str(count)
    return Table.from_dicts(columns, rows, meta)
