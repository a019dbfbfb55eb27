"""Scans, resources and files of archived experiments (xnat-api.md §3.5-3.7).

Each route answers under ``/experiments/{E}``, ``/projects/{P}/experiments/{E}`` and
``/projects/{P}/subjects/{S}/experiments/{E}`` (plus every ``/data``/``/REST``/
``/archive`` prefix). File URIs follow the path the listing was requested through.
"""

from __future__ import annotations

import sqlite3

from aiohttp import web

from xnat_tui.sandbox.archive_routes import experiment_or_404
from xnat_tui.sandbox.download_routes import (
    ZipMember,
    file_response,
    select_scans,
    zip_entry_name,
    zip_response,
)
from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.items import Item, item_response
from xnat_tui.sandbox.keys import STORE
from xnat_tui.sandbox.routing import add_route
from xnat_tui.sandbox.store import Store
from xnat_tui.sandbox.tables import Table, query_table, render_table

EXPERIMENT_BASES = (
    "/experiments/{expt}",
    "/projects/{project}/experiments/{expt}",
    "/projects/{project}/subjects/{subject}/experiments/{expt}",
)

SCAN_PK = "xnat_imagescandata_id"
SCAN_DEFAULTS = ("ID", "type", "quality", "xsiType", "note", "series_description")
SCAN_SHORTCUTS = (
    SCAN_PK,
    "ID",
    "type",
    "quality",
    "xsiType",
    "note",
    "series_description",
    "UID",
    "modality",
    "frames",
    "scanner",
    "insert_date",
)
RESOURCE_COLUMNS = (
    "xnat_abstractresource_id",
    "label",
    "element_name",
    "category",
    "cat_id",
    "cat_desc",
    "file_count",
    "file_size",
    "tags",
    "content",
    "format",
)
FILE_COLUMNS = (
    "Name",
    "Size",
    "URI",
    "collection",
    "file_tags",
    "file_format",
    "file_content",
    "cat_ID",
    "digest",
)


def _store(request: web.Request) -> Store:
    return request.app[STORE]


def _base_uri(request: web.Request, experiment: sqlite3.Row) -> str:
    if "project" in request.match_info:
        return (
            f"/data/projects/{experiment['project']}/subjects/{experiment['subject_id']}"
            f"/experiments/{experiment['id']}"
        )
    return f"/data/experiments/{experiment['id']}"


def _scan_or_404(store: Store, experiment: sqlite3.Row, scan_id: str) -> sqlite3.Row:
    row = store.get_scan(experiment["id"], scan_id)
    if row is None:
        raise xnat_error(404, f"Unable to find the specified scan: {scan_id}")
    return row


def scan_record(experiment_id: str, row: sqlite3.Row) -> dict[str, str]:
    return {
        SCAN_PK: str(row["pk"]),
        "ID": row["scan_id"],
        "type": row["type"],
        "quality": row["quality"],
        "xsiType": row["xsi_type"],
        "note": row["note"],
        "series_description": row["series_description"],
        "UID": row["uid"],
        "modality": row["modality"],
        "frames": row["frames"],
        "scanner": "",
        "insert_date": row["insert_date"],
        "URI": f"/data/experiments/{experiment_id}/scans/{row['scan_id']}",
    }


async def list_scans(request: web.Request) -> web.Response:
    experiment = experiment_or_404(request)
    store = _store(request)
    records = [scan_record(experiment["id"], r) for r in store.list_scans(experiment["id"])]
    table = query_table(
        request, records, pk=SCAN_PK, defaults=SCAN_DEFAULTS, shortcuts=SCAN_SHORTCUTS
    )
    return render_table(request, table)


async def get_scan(request: web.Request) -> web.Response:
    experiment = experiment_or_404(request)
    row = _scan_or_404(_store(request), experiment, request.match_info["scan"])
    item = Item(
        row["xsi_type"],
        "xnat:" + row["xsi_type"].split(":")[-1].replace("ScanData", "Scan"),
        attributes={"ID": row["scan_id"], "type": row["type"], "UID": row["uid"]},
        fields={
            "image_session_ID": experiment["id"],
            "quality": row["quality"],
            "series_description": row["series_description"],
            "modality": row["modality"],
            "frames": row["frames"],
            "note": row["note"],
        },
        insert_date=row["insert_date"],
    )
    return item_response(request, item)


def _resource_rows(store: Store, resources: list[sqlite3.Row], scan: sqlite3.Row | None) -> Table:
    records = []
    for res in resources:
        count, size = store.resource_stats(res["id"])
        records.append(
            {
                "xnat_abstractresource_id": str(res["id"]),
                "label": res["label"],
                "element_name": res["element_name"],
                "category": "scans" if scan is not None else "resources",
                "cat_id": scan["scan_id"] if scan is not None else "",
                "cat_desc": scan["series_description"] if scan is not None else "",
                "file_count": str(count),
                "file_size": str(size),
                "tags": "",
                "content": res["content"],
                "format": res["format"],
            }
        )
    return Table.from_dicts(
        RESOURCE_COLUMNS, records, {"title": "Resources", "totalRecords": str(len(records))}
    )


async def list_scan_resources(request: web.Request) -> web.Response:
    experiment = experiment_or_404(request)
    store = _store(request)
    scan = _scan_or_404(store, experiment, request.match_info["scan"])
    resources = store.list_resources(experiment["id"], int(scan["pk"]))
    return render_table(request, _resource_rows(store, resources, scan))


async def list_experiment_resources(request: web.Request) -> web.Response:
    experiment = experiment_or_404(request)
    store = _store(request)
    resources = store.list_resources(experiment["id"], None)
    return render_table(request, _resource_rows(store, resources, None))


def _resource(request: web.Request) -> tuple[sqlite3.Row, str, sqlite3.Row]:
    """(experiment, base URI of the resource's parent, resource) for the route."""
    experiment = experiment_or_404(request)
    store = _store(request)
    base = _base_uri(request, experiment)
    scan_pk: int | None = None
    if "scan" in request.match_info:
        scan = _scan_or_404(store, experiment, request.match_info["scan"])
        scan_pk = int(scan["pk"])
        base += f"/scans/{scan['scan_id']}"
    label = request.match_info["resource"]
    res = store.find_resource(experiment["id"], scan_pk, label)
    if res is None:
        raise xnat_error(404, f"Unable to find the specified resource: {label}")
    return experiment, base, res


def _listed(
    request: web.Request,
) -> tuple[sqlite3.Row, list[tuple[sqlite3.Row | None, str, sqlite3.Row]]]:
    """The resources a ``.../files`` route names: (scan or None, parent URI, resource).

    ``{scan}`` may be an ID, a type, a comma list, ``ALL``; ``{resource}`` a comma list
    of labels or IDs, or absent (every resource of the scans) (xnat-api-2.md §A.1).
    """
    experiment = experiment_or_404(request)
    store = _store(request)
    base = _base_uri(request, experiment)
    wanted = request.match_info.get("resource")
    labels = wanted.split(",") if wanted else None
    owners: list[tuple[sqlite3.Row | None, str]] = []
    if "scan" in request.match_info:
        selector = request.match_info["scan"]
        scans = select_scans(store, experiment["id"], selector)
        if not scans and "," not in selector and selector not in ("ALL", "*", "NULL"):
            raise xnat_error(404, f"Unable to find the specified scan: {selector}")
        owners = [(s, f"{base}/scans/{s['scan_id']}") for s in scans]
    else:
        owners = [(None, base)]
    found: list[tuple[sqlite3.Row | None, str, sqlite3.Row]] = []
    for scan, parent in owners:
        pk = None if scan is None else int(scan["pk"])
        if labels is None:
            found += [(scan, parent, r) for r in store.list_resources(experiment["id"], pk)]
            continue
        for label in labels:
            res = store.find_resource(experiment["id"], pk, label)
            if res is not None:
                found.append((scan, parent, res))
    if labels is not None and not found and len(owners) == 1 and len(labels) == 1:
        raise xnat_error(404, f"Unable to find the specified resource: {labels[0]}")
    return experiment, found


async def list_files(request: web.Request) -> web.StreamResponse:
    experiment, found = _listed(request)
    store = _store(request)
    if request.query.get("format", "").lower() == "zip":
        structure = request.query.get("structure", "default")
        entries = [
            ZipMember(
                zip_entry_name(structure, experiment["label"], scan, res["label"], f["name"]),
                store.file_path(f),
            )
            for scan, _, res in found
            for f in store.list_files(res["id"])
        ]
        return zip_response(request, entries, f"{experiment['label']}.zip")
    records = [
        {
            "Name": f["name"].rsplit("/", 1)[-1],
            "Size": str(f["size"]),
            "URI": f"{parent}/resources/{res['id']}/files/{f['name']}",
            "collection": res["label"],
            "file_tags": "",
            "file_format": f["file_format"],
            "file_content": f["file_content"],
            "cat_ID": str(res["id"]),
            "digest": f["digest"],
        }
        for _, parent, res in found
        for f in store.list_files(res["id"])
    ]
    # FileList: a Columns entry for URI, title "Files", never totalRecords (§3.7).
    table = Table.from_dicts(
        FILE_COLUMNS,
        records,
        {"title": "Files"},
        column_props=[{"key": "URI", "serverRoot": ""}],
    )
    return render_table(request, table)


async def get_file(request: web.Request) -> web.StreamResponse:
    _, _, res = _resource(request)
    store = _store(request)
    name = request.match_info["name"]
    row = store.get_file(res["id"], name)
    if row is None:
        raise xnat_error(404, f"Unable to find the specified file: {name}")
    path = store.file_path(row)
    if not path.is_file():
        raise xnat_error(404, f"Unable to find the specified file: {name}")
    # Content-Length, Last-Modified, Range ignored unless the 'ranges' switch is on.
    return file_response(request, path, name)


def setup(app: web.Application) -> None:
    for base in EXPERIMENT_BASES:
        add_route(app, "GET", base + "/scans", list_scans, archive=True)
        add_route(app, "GET", base + "/scans/{scan}", get_scan, archive=True)
        add_route(app, "GET", base + "/scans/{scan}/resources", list_scan_resources, archive=True)
        add_route(
            app, "GET", base + "/scans/{scan}/resources/{resource}/files", list_files, archive=True
        )
        add_route(app, "GET", base + "/scans/{scan}/files", list_files, archive=True)
        add_route(
            app,
            "GET",
            base + "/scans/{scan}/resources/{resource}/files/{name:.+}",
            get_file,
            archive=True,
        )
        add_route(app, "GET", base + "/resources", list_experiment_resources, archive=True)
        add_route(app, "GET", base + "/resources/{resource}/files", list_files, archive=True)
        add_route(
            app, "GET", base + "/resources/{resource}/files/{name:.+}", get_file, archive=True
        )
