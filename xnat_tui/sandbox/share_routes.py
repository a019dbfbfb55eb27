"""Sharing and changing the primary project of experiments and subjects (xnat-api-2.md §B).

Routes (every prefix, ``archive`` forms too):

* ``PUT .../experiments/{E}/projects/{DEST}[?label=L]`` — share (§B.1): database links
  only, nothing is copied; the share may carry its own label in DEST. Answers 200 with
  the experiment document; 409 on a repeat (after updating the label, XNAT's quirk) or
  a label clash in DEST; 403 without create rights in DEST; 404 for an unknown DEST.
* ``PUT .../experiments/{E}/projects/{DEST}?primary=true[&label=L]`` — change of
  primary project (§B.2): needs delete rights on the experiment (owners); the files
  move into DEST's archive folder; a share into DEST is removed.
* ``PUT /projects/{P}/subjects/{S}/projects/{DEST}[?label=L][&primary=true]`` — the
  same for a subject row only (no cascade to its experiments, as in XNAT).
* ``GET .../experiments/{E}/projects`` — the projects an experiment is in, the
  primary one first (rows ``label, ID, Secondary_ID, Name``).
* ``DELETE .../experiments/{E}/projects/{DEST}`` — unshare.

Deleting through a sharing project (``DELETE /projects/{DEST}/.../experiments/{E}``)
unshares; ``archive_routes`` asks :func:`shared_experiment` / :func:`shared_subject`
for that and for listings.

One deliberate difference from XNAT: a change of primary project onto a label already
used in DEST answers 409 "Specified label is already in use." and moves nothing. XNAT
sets that status and carries on with the move anyway (§B.2), leaving two sessions
with one label, which this store cannot hold; clients must check the label first
either way.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

from aiohttp import web

from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.keys import STORE
from xnat_tui.sandbox.permissions import User, can_delete, can_edit, can_read, request_user
from xnat_tui.sandbox.routing import add_route
from xnat_tui.sandbox.store import Store
from xnat_tui.sandbox.tables import Table, parse_bool, render_table
from xnat_tui.sandbox.writer import WRITER

# ---- queries other route modules use ----------------------------------------------


def shared_experiment(store: Store, project: str, id_or_label: str) -> sqlite3.Row | None:
    """The experiment shared into ``project`` under that share label (or accession ID)."""
    share = store.query_one(
        "SELECT * FROM experiment_shares WHERE project=? AND label=?", project, id_or_label
    )
    if share is None:
        share = store.query_one(
            "SELECT * FROM experiment_shares WHERE project=? AND experiment_id=?",
            project,
            id_or_label,
        )
    return None if share is None else store.get_experiment(str(share["experiment_id"]))


def shared_subject(store: Store, project: str, id_or_label: str) -> sqlite3.Row | None:
    """The subject shared into ``project`` under that share label (or accession ID)."""
    share = store.query_one(
        "SELECT * FROM subject_shares WHERE project=? AND label=?", project, id_or_label
    )
    if share is None:
        share = store.query_one(
            "SELECT * FROM subject_shares WHERE project=? AND subject_id=?", project, id_or_label
        )
    return None if share is None else store.get_subject(str(share["subject_id"]))


def experiment_share_label(store: Store, experiment_id: str, project: str) -> str | None:
    """The label the experiment has in a sharing project ('' → its accession ID), or None."""
    row = store.query_one(
        "SELECT label FROM experiment_shares WHERE experiment_id=? AND project=?",
        experiment_id,
        project,
    )
    return None if row is None else (str(row["label"]) or experiment_id)


def subject_share_label(store: Store, subject_id: str, project: str) -> str | None:
    row = store.query_one(
        "SELECT label FROM subject_shares WHERE subject_id=? AND project=?", subject_id, project
    )
    return None if row is None else (str(row["label"]) or subject_id)


def experiments_shared_into(store: Store, project: str) -> list[sqlite3.Row]:
    ids = store.query_all(
        "SELECT experiment_id FROM experiment_shares WHERE project=? ORDER BY experiment_id",
        project,
    )
    rows = [store.get_experiment(str(r["experiment_id"])) for r in ids]
    return [r for r in rows if r is not None]


def subjects_shared_into(store: Store, project: str) -> list[sqlite3.Row]:
    ids = store.query_all(
        "SELECT subject_id FROM subject_shares WHERE project=? ORDER BY subject_id", project
    )
    rows = [store.get_subject(str(r["subject_id"])) for r in ids]
    return [r for r in rows if r is not None]


def unshare_experiment(store: Store, experiment_id: str, project: str) -> None:
    store.execute(
        "DELETE FROM experiment_shares WHERE experiment_id=? AND project=?", experiment_id, project
    )


def unshare_subject(store: Store, subject_id: str, project: str) -> None:
    store.execute(
        "DELETE FROM subject_shares WHERE subject_id=? AND project=?", subject_id, project
    )


def _label_in_use(store: Store, table: str, project: str, label: str) -> bool:
    """``label`` names an item of ``project``, its own or shared in (what XNAT checks)."""
    if table == "experiments":
        own = store.query_one(
            "SELECT 1 FROM experiments WHERE project=? AND label=?", project, label
        )
        share = store.query_one(
            "SELECT 1 FROM experiment_shares WHERE project=? AND label=?", project, label
        )
    else:
        own = store.query_one("SELECT 1 FROM subjects WHERE project=? AND label=?", project, label)
        share = store.query_one(
            "SELECT 1 FROM subject_shares WHERE project=? AND label=?", project, label
        )
    return own is not None or share is not None


# ---- handlers ---------------------------------------------------------------------


def _store(request: web.Request) -> Store:
    return request.app[STORE]


def _dest(store: Store, request: web.Request) -> sqlite3.Row:
    key = request.match_info["dest"]
    row = store.resolve_project(key)
    if row is None:
        raise xnat_error(404, f"Unable to identify project: {key}")
    return row


async def share_experiment(request: web.Request) -> web.Response:
    from xnat_tui.sandbox.archive_routes import experiment_item, experiment_or_404
    from xnat_tui.sandbox.items import item_response

    user = request_user(request)
    store = _store(request)
    row = experiment_or_404(request)
    dest = _dest(store, request)
    dest_id = str(dest["id"])
    label = request.query.get("label", "").strip()
    if parse_bool(request.query.get("primary")):
        await _change_experiment_primary(request, user, store, row, dest_id, label)
        moved = store.get_experiment(str(row["id"]))
        assert moved is not None
        return item_response(request, experiment_item(store, moved))
    if dest_id == row["project"]:
        raise xnat_error(409, f"Already assigned to project:{dest_id}")
    existing = experiment_share_label(store, str(row["id"]), dest_id)
    if existing is not None:
        if label and label != existing and not _label_in_use(store, "experiments", dest_id, label):
            # XNAT updates the share's label first and still answers 409 (§B.1, step 4).
            store.execute(
                "UPDATE experiment_shares SET label=? WHERE experiment_id=? AND project=?",
                label,
                row["id"],
                dest_id,
            )
        raise xnat_error(409, f"Already assigned to project:{dest_id}")
    if label and _label_in_use(store, "experiments", dest_id, label):
        raise xnat_error(409, f"Label already in use:{label}")
    if not can_edit(user, dest_id):
        raise xnat_error(
            403,
            "Specified user account has insufficient create privileges for experiments in "
            f"the {dest_id} project.",
        )
    store.execute(
        "INSERT INTO experiment_shares (experiment_id, project, label) VALUES (?,?,?)",
        row["id"],
        dest_id,
        label,
    )
    return item_response(request, experiment_item(store, row))


async def _change_experiment_primary(
    request: web.Request,
    user: User,
    store: Store,
    row: sqlite3.Row,
    dest_id: str,
    label: str,
) -> None:
    if not can_delete(user, str(row["project"])):
        # Members may not delete, so they may not move either (RT TestSharing).
        raise xnat_error(
            403,
            "Specified user account has insufficient privileges for experiments in this project.",
        )
    new_label = label or str(row["label"])
    if dest_id == row["project"] and new_label == row["label"]:
        return
    clash = store.query_one(
        "SELECT id FROM experiments WHERE project=? AND label=?", dest_id, new_label
    )
    if clash is not None and clash["id"] != row["id"]:
        raise xnat_error(409, "Specified label is already in use.")
    await request.app[WRITER].run(_move_experiment, store, row, dest_id, new_label)


def _move_experiment(store: Store, row: sqlite3.Row, dest_id: str, label: str) -> None:
    """Files into DEST's archive folder, then the rows (one transaction)."""
    old_dir = store.experiment_dir(str(row["project"]), str(row["label"]))
    new_dir = store.experiment_dir(dest_id, label)
    old_rel = os.path.relpath(old_dir, store.data_dir)
    new_rel = os.path.relpath(new_dir, store.data_dir)
    if old_dir.exists():
        new_dir.parent.mkdir(parents=True, exist_ok=True)
        if new_dir.exists():
            shutil.rmtree(new_dir)  # leftovers of a deleted session with this label
        shutil.move(str(old_dir), str(new_dir))
    with store.transaction() as db:
        db.execute(
            "UPDATE experiments SET project=?, label=? WHERE id=?", (dest_id, label, row["id"])
        )
        db.execute(
            "DELETE FROM experiment_shares WHERE experiment_id=? AND project=?",
            (row["id"], dest_id),
        )
        files = db.execute(
            "SELECT f.id, f.path FROM files f JOIN resources r ON f.resource_id = r.id "
            "WHERE r.experiment_id=?",
            (row["id"],),
        ).fetchall()
        prefix = old_rel + os.sep
        for f in files:
            path = str(f["path"])
            if path.startswith(prefix):
                db.execute(
                    "UPDATE files SET path=? WHERE id=?",
                    (new_rel + os.sep + path[len(prefix) :], f["id"]),
                )


async def share_subject(request: web.Request) -> web.Response:
    from xnat_tui.sandbox.archive_routes import subject_item
    from xnat_tui.sandbox.items import item_response
    from xnat_tui.sandbox.permissions import readable_project

    user = request_user(request)
    store = _store(request)
    project = readable_project(store, user, request.match_info["project"])
    key = request.match_info["subject"]
    row = store.find_subject(str(project["id"]), key) or shared_subject(
        store, str(project["id"]), key
    )
    if row is None:
        raise xnat_error(404, "Unable to find the specified subject.")
    dest = _dest(store, request)
    dest_id = str(dest["id"])
    label = request.query.get("label", "").strip()
    if parse_bool(request.query.get("primary")):
        if not can_delete(user, str(row["project"])):
            raise xnat_error(
                403,
                "Specified user account has insufficient privileges for subjects in this project.",
            )
        new_label = label or str(row["label"])
        clash = store.find_subject(dest_id, new_label)
        if clash is not None and clash["id"] != row["id"]:
            raise xnat_error(409, "Specified label is already in use.")
        with store.transaction() as db:
            db.execute(
                "UPDATE subjects SET project=?, label=? WHERE id=?", (dest_id, new_label, row["id"])
            )
            db.execute(
                "DELETE FROM subject_shares WHERE subject_id=? AND project=?", (row["id"], dest_id)
            )
        moved = store.get_subject(str(row["id"]))
        assert moved is not None
        return item_response(request, subject_item(moved))
    if dest_id == row["project"]:
        raise xnat_error(409, f"Already assigned to project:{dest_id}")
    existing = subject_share_label(store, str(row["id"]), dest_id)
    if existing is not None:
        if label and label != existing:
            if _label_in_use(store, "subjects", dest_id, label):
                raise xnat_error(409, f"Label already in use:{label}")
            store.execute(
                "UPDATE subject_shares SET label=? WHERE subject_id=? AND project=?",
                label,
                row["id"],
                dest_id,
            )
            return item_response(request, subject_item(row))  # the subject variant: 200
        raise xnat_error(409, f"Already assigned to project:{dest_id}")
    if label and _label_in_use(store, "subjects", dest_id, label):
        raise xnat_error(409, f"Label already in use:{label}")
    if not can_edit(user, dest_id):
        raise xnat_error(
            403,
            "Specified user account has insufficient create privileges for subjects in "
            f"the {dest_id} project.",
        )
    store.execute(
        "INSERT INTO subject_shares (subject_id, project, label) VALUES (?,?,?)",
        row["id"],
        dest_id,
        label,
    )
    return item_response(request, subject_item(row))


async def experiment_projects(request: web.Request) -> web.Response:
    from xnat_tui.sandbox.archive_routes import experiment_or_404

    user = request_user(request)
    store = _store(request)
    row = experiment_or_404(request)
    rows: list[dict[str, str]] = []
    primary = store.get_project(str(row["project"]))
    if primary is not None:
        rows.append(_project_row(primary, str(row["label"])))
    for share in store.query_all(
        "SELECT * FROM experiment_shares WHERE experiment_id=? ORDER BY project", row["id"]
    ):
        project = store.get_project(str(share["project"]))
        if project is not None and can_read(user, str(project["id"])):
            rows.append(_project_row(project, str(share["label"])))
    return render_table(request, Table.from_dicts(["label", "ID", "Secondary_ID", "Name"], rows))


def _project_row(project: sqlite3.Row, label: str) -> dict[str, str]:
    return {
        "label": label,
        "ID": str(project["id"]),
        "Secondary_ID": str(project["secondary_id"]),
        "Name": str(project["name"]),
    }


async def unshare(request: web.Request) -> web.Response:
    from xnat_tui.sandbox.archive_routes import experiment_or_404

    user = request_user(request)
    store = _store(request)
    row = experiment_or_404(request)
    dest = _dest(store, request)
    dest_id = str(dest["id"])
    if dest_id == row["project"]:
        raise xnat_error(
            400, "Cannot remove the primary project; delete the experiment or change its project."
        )
    if experiment_share_label(store, str(row["id"]), dest_id) is None:
        raise xnat_error(404, f"Experiment is not shared into project {dest_id}")
    if not can_delete(user, dest_id):
        raise xnat_error(403, f"User cannot delete experiments for project {dest_id}")
    unshare_experiment(store, str(row["id"]), dest_id)
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    for base in (
        "/experiments/{expt}",
        "/projects/{project}/experiments/{expt}",
        "/projects/{project}/subjects/{subject}/experiments/{expt}",
    ):
        add_route(app, "PUT", base + "/projects/{dest}", share_experiment, archive=True)
        add_route(app, "DELETE", base + "/projects/{dest}", unshare, archive=True)
        add_route(app, "GET", base + "/projects", experiment_projects, archive=True)
    add_route(
        app,
        "PUT",
        "/projects/{project}/subjects/{subject}/projects/{dest}",
        share_subject,
        archive=True,
    )
