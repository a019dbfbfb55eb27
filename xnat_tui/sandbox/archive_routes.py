"""Archive listings and creation: projects, subjects, experiments (xnat-api.md §3.1-3.4, §4).

Every route answers under ``/data``, ``/REST`` and their ``/archive`` forms. Scans,
resources and files live in ``scan_routes``. Project settings (``prearchive_code``)
are here because XNAT serves them from ``ProjectResource``.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from xml.etree import ElementTree

from aiohttp import web

from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.items import Item, item_response
from xnat_tui.sandbox.keys import STORE
from xnat_tui.sandbox.permissions import (
    User,
    can_delete,
    can_edit,
    can_read,
    readable_project,
    request_user,
)
from xnat_tui.sandbox.routing import add_route
from xnat_tui.sandbox.share_routes import (
    experiment_share_label,
    experiments_shared_into,
    shared_experiment,
    shared_subject,
    subject_share_label,
    subjects_shared_into,
    unshare_experiment,
    unshare_subject,
)
from xnat_tui.sandbox.store import Store, StoreError
from xnat_tui.sandbox.tables import Table, parse_bool, query_table, render_table
from xnat_tui.sandbox.writer import WRITER

ID_PATTERN = re.compile(r"\A[A-Za-z0-9_-]+\Z")
PERMISSION_ACTIONS = ("active", "create", "delete", "edit", "read")

PROJECT_DEFAULTS = ("ID", "secondary_ID", "name", "description", "pi_firstname", "pi_lastname")
PROJECT_SHORTCUTS = (*PROJECT_DEFAULTS, "keywords", "insert_date", "insert_user", "alias")

SUBJECT_DEFAULTS = ("project", "label", "insert_date", "insert_user")
SUBJECT_SHORTCUTS = (
    "ID",
    "project",
    "label",
    "group",
    "src",
    "gender",
    "handedness",
    "yob",
    "dob",
    "age",
    "insert_date",
    "insert_user",
    "last_modified",
    "xsiType",
)
SUBJECT_PARAMS = {  # query shortcut → store column (SubjectResource applies these)
    "group": "grp",
    "src": "src",
    "gender": "gender",
    "handedness": "handedness",
    "yob": "yob",
    "dob": "dob",
    "age": "age",
}

EXPT_PK = "xnat:subjectassessordata/id"
EXPT_DEFAULTS = ("ID", "project", "date", "xsiType", "label", "insert_date")
EXPT_SHORTCUTS = (
    "ID",
    "project",
    "label",
    "date",
    "time",
    "xsiType",
    "insert_date",
    "insert_user",
    "last_modified",
    "modality",
    "UID",
    "subject_ID",
    "subject_label",
    "subject_project",
    "visit_id",
    "visit",
    "session_type",
    "note",
    "scanner",
    "operator",
    "dcmAccessionNumber",
    "dcmPatientId",
    "dcmPatientName",
)
EXPT_PARAMS = {  # query shortcut → store column (SubjAssessmentResource.loadItem)
    "date": "date",
    "time": "time",
    "UID": "uid",
    "modality": "modality",
    "note": "note",
    "visit_id": "visit_id",
    "session_type": "session_type",
    "scanner": "scanner",
    "operator": "operator",
    "dcmAccessionNumber": "dcm_accession",
    "dcmPatientId": "dcm_patient_id",
    "dcmPatientName": "dcm_patient_name",
}


def _store(request: web.Request) -> Store:
    return request.app[STORE]


def _param(request: web.Request, name: str, xsi_type: str = "") -> str | None:
    """A shortcut or an XML path (``xnat:mrSessionData/date``) from the query."""
    if name in request.query:
        return request.query[name]
    lower = name.lower()
    for key, value in request.query.items():
        if "/" in key and key.rsplit("/", 1)[1].lower() == lower:
            return value
        if key.lower() == lower:
            return value
    return None


def _text(body: str, content_type: str = "text/plain", status: int = 200) -> web.Response:
    return web.Response(text=body, content_type=content_type, status=status)


# ---- projects ----------------------------------------------------------------------


def project_record(store: Store, row: sqlite3.Row) -> dict[str, str]:
    return {
        "ID": row["id"],
        "secondary_ID": row["secondary_id"],
        "name": row["name"],
        "description": row["description"],
        "pi_firstname": row["pi_firstname"],
        "pi_lastname": row["pi_lastname"],
        "keywords": "",
        "insert_date": row["insert_date"],
        "insert_user": row["insert_user"],
        "alias": ",".join(store.project_aliases(row["id"])),
        "URI": f"/data/projects/{row['id']}",
    }


def _allowed(user: User, project: str, action: str) -> bool:
    if action in ("read", "active"):
        return can_read(user, project)
    if action in ("edit", "create"):
        return can_edit(user, project)
    return can_delete(user, project)


async def list_projects(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    rows = store.list_projects()
    if "permissions" in request.query:
        action = request.query["permissions"]
        # PermissionsProjectHandler throws; ProjectListResource turns it into a 500.
        if not action.strip():
            raise xnat_error(500, "You must specify a value for the permissions parameter.")
        if action not in PERMISSION_ACTIONS:
            raise xnat_error(
                500,
                "You must specify one of the following values for the permissions parameter: "
                + ", ".join(PERMISSION_ACTIONS),
            )
        wanted = [r for r in rows if _allowed(user, r["id"], action)]
        wanted.sort(key=lambda r: (r["secondary_id"], r["id"]))
        # Raw SQL through Postgres: lower-cased keys, no totalRecords, no URI (§3.1).
        table = Table.from_dicts(
            ["id", "secondary_id"],
            [{"id": r["id"], "secondary_id": r["secondary_id"]} for r in wanted],
        )
        return render_table(request, table)
    if any(k in request.query for k in FILTERED_PARAMS):
        return _filtered_projects(request, user, store, rows)
    visible = [r for r in rows if can_read(user, r["id"])]
    restrict = request.query.get("restrict")
    if restrict in ("edit", "delete"):
        visible = [r for r in visible if _allowed(user, r["id"], restrict)]
    records = [project_record(store, r) for r in visible]
    table = query_table(
        request,
        records,
        pk="ID",
        defaults=PROJECT_DEFAULTS[1:],
        shortcuts=PROJECT_SHORTCUTS,
    )
    return render_table(request, table)


FILTERED_PARAMS = (
    "accessible",
    "data-accessibility",
    "prearc_code",
    "owner",
    "member",
    "collaborator",
    "activeSince",
    "recent",
    "favorite",
    "admin",
)
ROLE_NAMES = {"owner": "Owners", "member": "Members", "collaborator": "Collaborators"}


def _filtered_projects(
    request: web.Request, user: User, store: Store, rows: list[sqlite3.Row]
) -> web.Response:
    """ProjectListResource.FilteredProjects: a DisplaySearch with its own columns.

    ``accessible``/``data-accessibility`` narrow (AND); ``owner``, ``member``,
    ``collaborator``, ``admin`` widen each other (OR), as in XNAT."""
    query = request.query
    visible = list(rows)
    access = query.get("data-accessibility")
    if access is not None:
        if access.lower() not in ("readable", "writable"):
            raise xnat_error(
                400,
                "The value specified for the data-accessibility parameter is invalid: "
                f"{access}. Must be one of readable or writable.",
            )
        need = can_edit if access.lower() == "writable" else can_read
        visible = [r for r in visible if need(user, r["id"])]
    accessible = query.get("accessible")
    if accessible is not None:
        if accessible.lower() == "true":
            visible = [r for r in visible if can_read(user, r["id"])]
        else:
            visible = [r for r in visible if user.role(r["id"]) is None]
    wanted: list[set[str]] = []
    for flag in ("owner", "member", "collaborator"):
        value = query.get(flag)
        if value is None:
            continue
        has = {r["id"] for r in visible if user.role(r["id"]) == flag}
        wanted.append(has if value.lower() == "true" else {r["id"] for r in visible} - has)
    if query.get("admin") is not None and parse_bool(query.get("admin")) and user.admin:
        wanted.append({r["id"] for r in visible})
    if wanted:
        allowed = set().union(*wanted)
        visible = [r for r in visible if r["id"] in allowed]
    # Even these searches only return rows the user may read.
    visible = [r for r in visible if can_read(user, r["id"])]
    visible.sort(key=lambda r: (r["secondary_id"], r["id"]))
    uid = store.user_id(user.login)
    columns = [
        "id",
        "name",
        "description",
        "secondary_id",
        "pi",
        "project_invs",
        "project_access",
        "project_access_img",
        "insert_date",
        "insert_user",
        f"user_role_{uid}",
        f"last_accessed_{uid}",
    ]
    with_codes = parse_bool(query.get("prearc_code"))
    if with_codes:
        columns += ["proj_quarantine", "proj_prearchive_code"]
    records = []
    for r in visible:
        pi = ", ".join(x for x in (r["pi_lastname"], r["pi_firstname"]) if x)
        role = user.role(r["id"])
        records.append(
            {
                "id": r["id"],
                "name": r["name"],
                "description": r["description"],
                "secondary_id": r["secondary_id"],
                "pi": pi,
                "project_invs": "",
                "project_access": r["accessibility"],
                "project_access_img": f"/@WEBAPP/images/{r['accessibility'][:2]}.gif",
                "insert_date": r["insert_date"],
                "insert_user": r["insert_user"],
                f"user_role_{uid}": ROLE_NAMES.get(role or "", ""),
                f"last_accessed_{uid}": "",
                "proj_quarantine": "0",
                "proj_prearchive_code": str(r["prearchive_code"]),
            }
        )
    meta = {"title": "Projects", "xdat_user_id": str(uid), "totalRecords": str(len(records))}
    return render_table(request, Table.from_dicts(columns, records, meta))


async def xapi_access_projects(request: web.Request) -> web.Response:
    """The user's project group memberships (DataAccessApi → RoleHolder)."""
    user = request_user(request)
    store = _store(request)
    out = []
    for project_id, role in sorted(user.roles.items()):
        row = store.get_project(project_id)
        if row is None:
            continue
        out.append(
            {
                "secondary_ID": row["secondary_id"],
                "ID": row["id"],
                "role": ROLE_NAMES[role],
                "name": row["name"],
                "URI": f"/data/projects/{row['id']}",
                "group_id": f"{row['id']}_{role}",
                "description": row["description"],
            }
        )
    return web.json_response(out)


def project_item(store: Store, row: sqlite3.Row) -> Item:
    pi = Item(
        "xnat:investigatorData",
        "xnat:PI",
        fields={"firstname": row["pi_firstname"], "lastname": row["pi_lastname"]},
    )
    aliases = [
        Item("xnat:projectData_alias", "xnat:alias", fields={"alias": a})
        for a in store.project_aliases(row["id"])
    ]
    has_pi = bool(row["pi_firstname"] or row["pi_lastname"])
    return Item(
        "xnat:projectData",
        "xnat:Project",
        attributes={"ID": row["id"], "secondary_ID": row["secondary_id"]},
        fields={"name": row["name"], "description": row["description"]},
        children=[("PI", [pi] if has_pi else []), ("aliases", aliases)],
        insert_date=row["insert_date"],
    )


async def get_project(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    row = readable_project(store, user, request.match_info["project"])
    return item_response(request, project_item(store, row))


def _project_fields(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("secondary_ID", "name", "description", "pi_firstname", "pi_lastname"):
        value = _param(request, name)
        if value is not None:
            out[name] = value
    return out


async def _xml_project_id(request: web.Request) -> str | None:
    if not request.can_read_body:
        return None
    body = await request.text()
    if not body.strip():
        return None
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise xnat_error(400, "Unable to parse the submitted XML document.") from None
    return root.get("ID")


def _create_project(store: Store, user: User, project_id: str, fields: dict[str, str]) -> None:
    if not ID_PATTERN.match(project_id):
        raise xnat_error(417, "Invalid character in project ID.")
    try:
        store.create_project(
            project_id,
            user=user.login,
            secondary_id=fields.get("secondary_ID"),
            name=fields.get("name"),
            description=fields.get("description", ""),
            pi_firstname=fields.get("pi_firstname", ""),
            pi_lastname=fields.get("pi_lastname", ""),
        )
    except StoreError:
        raise xnat_error(409, "Project already exists.") from None
    user.roles[project_id] = "owner"


async def post_projects(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    project_id = _param(request, "ID") or await _xml_project_id(request)
    if not project_id:
        raise xnat_error(400, "Project ID is required.")
    _create_project(store, user, project_id, _project_fields(request))
    return _text(project_id, status=201)


async def put_project(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    project_id = request.match_info["project"]
    fields = _project_fields(request)
    row = store.get_project(project_id)
    if row is None:
        _create_project(store, user, project_id, fields)
        return _text(project_id, status=201)
    if not can_edit(user, project_id):
        if not can_read(user, project_id):
            raise xnat_error(404, "Unable to find the specified experiment.")
        raise xnat_error(403, "Specified user account has insufficient edit privileges.")
    columns = {
        "secondary_ID": "secondary_id",
        "name": "name",
        "description": "description",
        "pi_firstname": "pi_firstname",
        "pi_lastname": "pi_lastname",
    }
    with store.transaction() as db:
        for key, value in fields.items():
            db.execute(f"UPDATE projects SET {columns[key]}=? WHERE id=?", (value, project_id))
    return _text(project_id)


# ---- project settings (ProjectResource remainder paths) ------------------------------


async def get_prearchive_code(request: web.Request) -> web.Response:
    user = request_user(request)
    row = readable_project(_store(request), user, request.match_info["project"])
    return _text(str(row["prearchive_code"]))


async def put_prearchive_code(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    row = readable_project(store, user, request.match_info["project"])
    raw = request.match_info.get("code") or request.query.get("code", "")
    value = {"true": "1", "false": "0"}.get(raw.lower(), raw)
    if value not in ("0", "1", "4", "5"):
        raise xnat_error(400, f"Invalid prearchive code: {raw}")
    if not can_edit(user, row["id"]):
        raise xnat_error(403, "Specified user account has insufficient edit privileges.")
    store.set_prearchive_code(row["id"], int(value))
    return _text(value)


async def get_quarantine_code(request: web.Request) -> web.Response:
    readable_project(_store(request), request_user(request), request.match_info["project"])
    return _text("0")


async def get_current_arc(request: web.Request) -> web.Response:
    readable_project(_store(request), request_user(request), request.match_info["project"])
    return _text("arc001")


# ---- subjects ----------------------------------------------------------------------


def subject_record(row: sqlite3.Row) -> dict[str, str]:
    return {
        "ID": row["id"],
        "project": row["project"],
        "label": row["label"],
        "group": row["grp"],
        "src": row["src"],
        "gender": row["gender"],
        "handedness": row["handedness"],
        "yob": row["yob"],
        "dob": row["dob"],
        "age": row["age"],
        "insert_date": row["insert_date"],
        "insert_user": row["insert_user"],
        "last_modified": row["last_modified"],
        "xsiType": "xnat:subjectData",
        "URI": f"/data/subjects/{row['id']}",
    }


async def list_project_subjects(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    key = request.match_info["project"]
    project = readable_project(store, user, key, message=f"Unable to identify project {key}")
    records = [subject_record(r) for r in store.list_subjects(project["id"])]
    for shared in subjects_shared_into(store, project["id"]):
        # Seen in a sharing project under its share label (or accession ID), §B.1.
        record = subject_record(shared)
        record["label"] = subject_share_label(store, shared["id"], project["id"]) or ""
        record["project"] = project["id"]
        records.append(record)
    table = query_table(
        request, records, pk="ID", defaults=SUBJECT_DEFAULTS, shortcuts=SUBJECT_SHORTCUTS
    )
    return render_table(request, table)


async def list_all_subjects(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    records = [subject_record(r) for r in store.list_subjects() if can_read(user, r["project"])]
    table = query_table(
        request, records, pk="ID", defaults=SUBJECT_DEFAULTS, shortcuts=SUBJECT_SHORTCUTS
    )
    return render_table(request, table)


def subject_item(row: sqlite3.Row) -> Item:
    demographics = Item(
        "xnat:demographicData",
        "xnat:demographics",
        fields={
            "gender": row["gender"],
            "handedness": row["handedness"],
            "yob": row["yob"],
            "dob": row["dob"],
            "age": row["age"],
        },
    )
    has_demo = any(row[k] for k in ("gender", "handedness", "yob", "dob", "age"))
    return Item(
        "xnat:subjectData",
        "xnat:Subject",
        attributes={"ID": row["id"], "project": row["project"], "label": row["label"]},
        fields={"group": row["grp"], "src": row["src"]},
        children=[("demographics", [demographics] if has_demo else [])],
        insert_date=row["insert_date"],
    )


def _subject_or_404(store: Store, project: str, subject: str) -> sqlite3.Row:
    row = store.find_subject(project, subject) or shared_subject(store, project, subject)
    if row is None:
        raise xnat_error(
            404,
            "Unable to find the specified subject. The project "
            f"{project} does not contain a subject identifiable by the ID or label {subject}.",
        )
    return row


async def get_subject(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    project = readable_project(store, user, request.match_info["project"])
    row = _subject_or_404(store, project["id"], request.match_info["subject"])
    return item_response(request, subject_item(row))


async def get_subject_by_id(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    row = store.get_subject(request.match_info["subject"])
    if row is None or not can_read(user, row["project"]):
        raise xnat_error(404, "Unable to find the specified subject.")
    return item_response(request, subject_item(row))


def _subject_fields(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, column in SUBJECT_PARAMS.items():
        value = _param(request, name)
        if value is not None:
            out[column] = value
    return out


async def put_subject(request: web.Request) -> web.Response:
    return _put_subject(request, request.match_info["project"], request.match_info["subject"])


async def put_subject_by_id(request: web.Request) -> web.Response:
    """``PUT /data/subjects/{S}``: the project comes from the query (or the subject)."""
    user = request_user(request)
    store = _store(request)
    key = request.match_info["subject"]
    existing = store.get_subject(key)
    project = _param(request, "project")
    if existing is not None and (project is None or project == existing["project"]):
        if not can_read(user, existing["project"]):
            raise xnat_error(404, "Unable to find the specified subject.")
        return _put_subject(request, existing["project"], existing["id"])
    if not project:
        raise xnat_error(422, "Submitted subject record must include the project attribute.")
    return _put_subject(request, project, key)


def _put_subject(request: web.Request, project_key: str, label: str) -> web.Response:
    user = request_user(request)
    store = _store(request)
    project = readable_project(store, user, project_key)
    project_id = project["id"]
    fields = _subject_fields(request)
    new_label = _param(request, "label")
    existing = store.find_subject(project_id, label)
    if existing is not None:
        if not can_edit(user, project_id):
            raise xnat_error(
                403,
                "Specified user account has insufficient edit privileges for subjects in "
                "this project.",
            )
        if new_label and new_label != existing["label"]:
            if store.find_subject(project_id, new_label) is not None:
                raise xnat_error(409, "Specified label is already in use.")
            fields["label"] = new_label
        store.update_subject(existing["id"], **fields)
        return _text(existing["id"])
    if not can_edit(user, project_id):
        raise xnat_error(
            403,
            "Specified user account has insufficient create privileges for subjects in this "
            "project.",
        )
    if new_label and new_label != label and store.find_subject(project_id, new_label):
        raise xnat_error(409, "Specified label is already in use.")
    try:
        subject_id = store.create_subject(project_id, new_label or label, user.login, **fields)
    except StoreError as exc:
        raise xnat_error(409, str(exc)) from None
    return _text(subject_id, status=201)


# ---- experiments -------------------------------------------------------------------


def experiment_record(store: Store, row: sqlite3.Row) -> dict[str, str]:
    subject = store.get_subject(row["subject_id"])
    return {
        EXPT_PK: row["id"],
        "ID": row["id"],
        "project": row["project"],
        "label": row["label"],
        "date": row["date"],
        "time": row["time"],
        "xsiType": row["xsi_type"],
        "insert_date": row["insert_date"],
        "insert_user": row["insert_user"],
        "last_modified": row["last_modified"],
        "modality": row["modality"],
        "UID": row["uid"],
        "subject_ID": row["subject_id"],
        "subject_label": subject["label"] if subject is not None else "",
        "subject_project": subject["project"] if subject is not None else "",
        "visit_id": row["visit_id"],
        "visit": "",
        "session_type": row["session_type"],
        "note": row["note"],
        "scanner": row["scanner"],
        "operator": row["operator"],
        "dcmAccessionNumber": row["dcm_accession"],
        "dcmPatientId": row["dcm_patient_id"],
        "dcmPatientName": row["dcm_patient_name"],
        "URI": f"/data/experiments/{row['id']}",
    }


def _experiment_table(
    request: web.Request, records: list[dict[str, str]], defaults: tuple[str, ...]
) -> Table:
    return query_table(
        request, records, pk=EXPT_PK, defaults=defaults, shortcuts=(EXPT_PK, *EXPT_SHORTCUTS)
    )


async def list_project_experiments(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    key = request.match_info["project"]
    project = readable_project(store, user, key, message=f"Unable to identify project {key}")
    subject_id: str | None = None
    if "subject" in request.match_info:
        label = request.match_info["subject"]
        row = store.find_subject(project["id"], label) or shared_subject(
            store, project["id"], label
        )
        if row is None:
            raise xnat_error(404, f"Unable to identify subject {label}")
        subject_id = row["id"]
    rows = store.list_experiments(project["id"], subject_id)
    records = [experiment_record(store, r) for r in rows]
    for shared in experiments_shared_into(store, project["id"]):
        if subject_id is not None and shared["subject_id"] != subject_id:
            continue
        # Seen in a sharing project under its share label (or accession ID), §B.1.
        record = experiment_record(store, shared)
        record["label"] = experiment_share_label(store, shared["id"], project["id"]) or ""
        record["project"] = project["id"]
        records.append(record)
    return render_table(request, _experiment_table(request, records, EXPT_DEFAULTS))


async def list_all_experiments(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    rows = [r for r in store.list_experiments() if can_read(user, r["project"])]
    records = [experiment_record(store, r) for r in rows]
    defaults = (*EXPT_DEFAULTS, "subject_ID", "subject_label")
    return render_table(request, _experiment_table(request, records, defaults))


def experiment_item(store: Store, row: sqlite3.Row) -> Item:
    tag = {
        "xnat:mrSessionData": "xnat:MRSession",
        "xnat:ctSessionData": "xnat:CTSession",
        "xnat:petSessionData": "xnat:PETSession",
    }.get(row["xsi_type"], "xnat:" + row["xsi_type"].split(":")[-1])
    scans = [
        Item(
            s["xsi_type"],
            "xnat:scan",
            attributes={"ID": s["scan_id"], "type": s["type"], "UID": s["uid"]},
            fields={
                "quality": s["quality"],
                "series_description": s["series_description"],
                "modality": s["modality"],
                "frames": s["frames"],
                "note": s["note"],
            },
        )
        for s in store.list_scans(row["id"])
    ]
    return Item(
        row["xsi_type"],
        tag,
        attributes={
            "ID": row["id"],
            "project": row["project"],
            "label": row["label"],
            "UID": row["uid"],
        },
        fields={
            "date": row["date"],
            "time": row["time"],
            "note": row["note"],
            "visit_id": row["visit_id"],
            "modality": row["modality"],
            "session_type": row["session_type"],
            "scanner": row["scanner"],
            "operator": row["operator"],
            "dcmAccessionNumber": row["dcm_accession"],
            "dcmPatientId": row["dcm_patient_id"],
            "dcmPatientName": row["dcm_patient_name"],
            "subject_ID": row["subject_id"],
        },
        children=[("scans", scans)],
        insert_date=row["insert_date"],
    )


def experiment_or_404(request: web.Request) -> sqlite3.Row:
    """The experiment named by the route (``/experiments/{expt}`` or a project path)."""
    user = request_user(request)
    store = _store(request)
    expt = request.match_info["expt"]
    message = "Unable to find the specified experiment."
    if "project" in request.match_info:
        project = readable_project(store, user, request.match_info["project"])
        if "subject" in request.match_info:
            subject = _subject_or_404(store, project["id"], request.match_info["subject"])
            row = store.find_experiment(project["id"], expt) or shared_experiment(
                store, project["id"], expt
            )
            if row is None or row["subject_id"] != subject["id"]:
                raise xnat_error(404, message)
            return row
        row = store.find_experiment(project["id"], expt) or shared_experiment(
            store, project["id"], expt
        )
        if row is None:
            raise xnat_error(404, message)
        return row  # readable: the project in the path is (its own or shared into it)
    else:
        row = store.get_experiment(expt)
    if row is None or not (can_read(user, row["project"]) or _readable_share(store, user, row)):
        raise xnat_error(404, message)
    return row


def _readable_share(store: Store, user: User, row: sqlite3.Row) -> bool:
    """A member of a project the experiment is shared into may read it there."""
    shares = store.query_all(
        "SELECT project FROM experiment_shares WHERE experiment_id=?", row["id"]
    )
    return any(can_read(user, str(s["project"])) for s in shares)


def _via_project(request: web.Request, store: Store, primary: str) -> str:
    """The project a DELETE names (path), else the primary one (§B.4)."""
    key = request.match_info.get("project")
    if key is None:
        return primary
    row = store.resolve_project(key)
    return str(row["id"]) if row is not None else primary


async def get_experiment(request: web.Request) -> web.Response:
    row = experiment_or_404(request)
    return item_response(request, experiment_item(_store(request), row))


def _experiment_fields(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, column in EXPT_PARAMS.items():
        value = _param(request, name)
        if value is not None:
            out[column] = value
    return out


async def put_experiment(request: web.Request) -> web.Response:
    return _put_experiment(
        request,
        request.match_info["project"],
        request.match_info["subject"],
        request.match_info["expt"],
    )


async def put_experiment_by_id(request: web.Request) -> web.Response:
    """``PUT /data/experiments/{E}?project=P&subject_ID=S&xsiType=...`` (ExperimentResource)."""
    user = request_user(request)
    store = _store(request)
    key = request.match_info["expt"]
    existing = store.get_experiment(key)
    if existing is not None:
        if not can_read(user, existing["project"]):
            raise xnat_error(404, "Unable to find the specified experiment.")
        return _put_experiment(request, existing["project"], existing["subject_id"], key)
    project = _param(request, "project")
    if not project:
        raise xnat_error(422, "Submitted experiment record must include the project attribute.")
    subject = _param(request, "subject_ID") or _param(request, "subject_label")
    if not subject:
        raise xnat_error(422, "Submitted experiment record must include the subject.")
    return _put_experiment(request, project, subject, key)


def _put_experiment(
    request: web.Request, project_key: str, subject_label: str, label: str
) -> web.Response:
    user = request_user(request)
    store = _store(request)
    project = readable_project(store, user, project_key)
    project_id = project["id"]
    fields = _experiment_fields(request)
    xsi_type = _param(request, "xsiType") or _param(request, "xsi:type")
    new_label = _param(request, "label")
    existing = store.find_experiment(project_id, label)
    if existing is not None:
        if not can_edit(user, project_id):
            raise xnat_error(
                403,
                "Specified user account has insufficient edit privileges for experiments "
                "in this project.",
            )
        if new_label and new_label != existing["label"]:
            if store.find_experiment(project_id, new_label) is not None:
                raise xnat_error(409, "Specified label is already in use.")
            fields["label"] = new_label
        if xsi_type and xsi_type != existing["xsi_type"]:
            fields["xsi_type"] = xsi_type
        store.update_experiment(existing["id"], **fields)
        return _text(existing["id"])
    if not xsi_type:
        # No body and no xsiType: nothing to build the new experiment from.
        raise xnat_error(417, "Need PUT Contents")
    if not re.fullmatch(r"[A-Za-z]+:[A-Za-z]+", xsi_type):
        raise xnat_error(400, f"Unknown data type: {xsi_type}")
    if not can_edit(user, project_id):
        raise xnat_error(
            403,
            "Specified user account has insufficient create privileges for experiments in this "
            "project.",
        )
    label = new_label or label
    if store.find_experiment(project_id, label) is not None:
        raise xnat_error(409, "Specified label is already in use.")
    subject_id, _ = store.get_or_create_subject(project_id, subject_label, user.login)
    experiment_id = store.create_experiment(
        project_id, subject_id, label, xsi_type, user.login, **fields
    )
    return _text(experiment_id, status=201)


async def delete_experiment(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    row = experiment_or_404(request)
    via = _via_project(request, store, row["project"])
    if via != row["project"]:
        # Through a sharing project: only the share goes; removeFiles is ignored (§B.4).
        if not can_delete(user, via):
            raise xnat_error(403, f"User cannot delete experiments for project {via}")
        unshare_experiment(store, row["id"], via)
        return web.Response(status=200)
    if not can_delete(user, row["project"]):
        raise xnat_error(403, "User account doesn't have permission to delete this experiment.")
    remove_files = parse_bool(request.query.get("removeFiles"))
    # On the writer thread: an archive merging into this session runs there too.
    await request.app[WRITER].run(_delete_experiment, store, row, remove_files)
    return web.Response(status=200)


def _delete_experiment(store: Store, row: sqlite3.Row, remove_files: bool) -> None:
    store.delete_experiment(row["id"])
    if remove_files:
        shutil.rmtree(store.experiment_dir(row["project"], row["label"]), True)


async def delete_subject(request: web.Request) -> web.Response:
    user = request_user(request)
    store = _store(request)
    project = readable_project(store, user, request.match_info["project"])
    row = _subject_or_404(store, project["id"], request.match_info["subject"])
    if row["project"] != project["id"]:
        # Shared into this project: only the share goes (§B.4).
        if not can_delete(user, project["id"]):
            raise xnat_error(403, f"User cannot delete subjects for project {project['id']}")
        unshare_subject(store, row["id"], project["id"])
        return web.Response(status=200)
    if not can_delete(user, project["id"]):
        raise xnat_error(403, "User account doesn't have permission to delete this subject.")
    remove_files = parse_bool(request.query.get("removeFiles"))

    def delete() -> None:
        for expt in store.list_experiments(project["id"], row["id"]):
            _delete_experiment(store, expt, remove_files)
        store.delete_subject(row["id"])

    await request.app[WRITER].run(delete)
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    app.router.add_get("/xapi/access/projects", xapi_access_projects)
    add_route(app, "GET", "/projects", list_projects, archive=True)
    add_route(app, "POST", "/projects", post_projects, archive=True)
    add_route(app, "GET", "/projects/{project}", get_project, archive=True)
    add_route(app, "PUT", "/projects/{project}", put_project, archive=True)
    add_route(app, "GET", "/projects/{project}/prearchive_code", get_prearchive_code, archive=True)
    add_route(app, "PUT", "/projects/{project}/prearchive_code", put_prearchive_code, archive=True)
    add_route(
        app, "PUT", "/projects/{project}/prearchive_code/{code}", put_prearchive_code, archive=True
    )
    add_route(app, "GET", "/projects/{project}/quarantine_code", get_quarantine_code, archive=True)
    add_route(app, "GET", "/projects/{project}/current_arc", get_current_arc, archive=True)

    add_route(app, "GET", "/projects/{project}/subjects", list_project_subjects, archive=True)
    add_route(app, "GET", "/subjects", list_all_subjects, archive=True)
    add_route(app, "GET", "/subjects/{subject}", get_subject_by_id, archive=True)
    add_route(app, "GET", "/projects/{project}/subjects/{subject}", get_subject, archive=True)
    add_route(app, "PUT", "/projects/{project}/subjects/{subject}", put_subject, archive=True)
    add_route(app, "PUT", "/subjects/{subject}", put_subject_by_id, archive=True)

    add_route(app, "GET", "/experiments", list_all_experiments, archive=True)
    add_route(app, "GET", "/experiments/{expt}", get_experiment, archive=True)
    add_route(app, "PUT", "/experiments/{expt}", put_experiment_by_id, archive=True)
    add_route(app, "GET", "/projects/{project}/experiments", list_project_experiments, archive=True)
    add_route(app, "GET", "/projects/{project}/experiments/{expt}", get_experiment, archive=True)
    add_route(
        app,
        "GET",
        "/projects/{project}/subjects/{subject}/experiments",
        list_project_experiments,
        archive=True,
    )
    add_route(
        app,
        "GET",
        "/projects/{project}/subjects/{subject}/experiments/{expt}",
        get_experiment,
        archive=True,
    )
    add_route(
        app,
        "PUT",
        "/projects/{project}/subjects/{subject}/experiments/{expt}",
        put_experiment,
        archive=True,
    )
    add_route(app, "DELETE", "/projects/{project}/subjects/{subject}", delete_subject, archive=True)
    for template in (
        "/experiments/{expt}",
        "/projects/{project}/experiments/{expt}",
        "/projects/{project}/subjects/{subject}/experiments/{expt}",
    ):
        add_route(app, "DELETE", template, delete_experiment, archive=True)
