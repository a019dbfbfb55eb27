"""Share, change of primary project, delete, and what the user may do (xnat-api-2.md §B).

* :func:`permissions` — the projects the user may read, create in (``edit``) and
  delete in, from three ``/data/projects?permissions=...`` listings: what a copy or move
  checks before anything moves.
* :func:`share_subject` / :func:`share_experiment` — ``PUT .../projects/{DEST}?label=``:
  database links only. The label is always given (without it the share shows up under
  its accession ID in DEST, §B.1). A 409 is an answer, not an error: it is returned as
  ``ShareResult.conflict`` with XNAT's message ("Already assigned", "Label already in use").
* :func:`change_primary` / :func:`change_subject_primary` — ``?primary=true``: the files
  move server-side. XNAT carries on despite a label clash in DEST, so callers check the
  label first (:func:`label_free`).
* :func:`delete_experiment` / :func:`delete_subject` — ``DELETE`` with ``removeFiles``
  and an ``event_reason``; through the primary project (a sharing project would only
  unshare).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from xnat_tui.xnat import tables
from xnat_tui.xnat.client import XnatClient
from xnat_tui.xnat.errors import extract_server_message

REASON = "xnat-tui copy/move"


def _q(segment: str) -> str:
    return quote(segment, safe="")


@dataclass(frozen=True)
class Permissions:
    """Project IDs by what the user may do there (site admins: every project)."""

    read: frozenset[str]
    create: frozenset[str]
    delete: frozenset[str]

    def refusal(self, source: str, dest: str, *, move: bool, create_subjects: bool) -> str:
        """Why the copy or move may not go ahead ('' when it may)."""
        if source not in self.read:
            return f"you may not read project {source} (or it does not exist)"
        if dest not in self.create:
            what = "sessions and subjects" if create_subjects else "sessions"
            return f"you may not create {what} in project {dest} (owners and members may)"
        if move and source not in self.delete:
            return (
                f"a move deletes the source sessions, and you may not delete in project "
                f"{source} (only its owners may)"
            )
        return ""


async def permissions(client: XnatClient) -> Permissions:
    """Three listings (``permissions=read|edit|delete``): what the user may do where."""
    found: dict[str, frozenset[str]] = {}
    for action in ("read", "edit", "delete"):
        ctx = client.context(f"list the projects you may {action}")
        payload = await client.get_json(
            "/data/projects", ctx, {"permissions": action, "dataType": "xnat:subjectData"}
        )
        ids = set()
        for row in tables.rows(payload, "projects"):
            ident = row.get("id") or row.get("ID") or ""
            if ident:
                ids.add(str(ident))
        found[action] = frozenset(ids)
    return Permissions(read=found["read"], create=found["edit"], delete=found["delete"])


@dataclass(frozen=True)
class ShareResult:
    ok: bool
    conflict: str = ""  # XNAT's 409 message ("Already assigned to project:Q", ...)


def _experiment_path(project: str, subject: str, experiment: str) -> str:
    return f"/data/projects/{_q(project)}/subjects/{_q(subject)}/experiments/{_q(experiment)}"


async def _share(client: XnatClient, path: str, dest: str, label: str, what: str) -> ShareResult:
    ctx = client.context(
        f"share {what} into {dest}",
        project=dest,
        permission=f"create access in project {dest} (owners and members)",
    )
    reply = await client.request(
        "PUT",
        f"{path}/projects/{_q(dest)}",
        ctx,
        params={"label": label, "event_reason": REASON},
        ok=(200, 201, 409),
    )
    if reply.status == 409:
        return ShareResult(False, extract_server_message(reply.text) or "conflict")
    return ShareResult(True)


async def share_subject(
    client: XnatClient, project: str, subject: str, dest: str, label: str
) -> ShareResult:
    path = f"/data/projects/{_q(project)}/subjects/{_q(subject)}"
    return await _share(client, path, dest, label, f"subject {subject}")


async def share_experiment(
    client: XnatClient, project: str, subject: str, experiment: str, dest: str, label: str
) -> ShareResult:
    path = _experiment_path(project, subject, experiment)
    return await _share(client, path, dest, label, f"session {experiment}")


async def label_free(client: XnatClient, project: str, label: str) -> bool:
    """No session of ``project`` (own or shared in) has this label."""
    return await client.find_experiment(project, label) is None


async def change_primary(
    client: XnatClient, project: str, subject: str, experiment: str, dest: str, label: str
) -> None:
    """Make ``dest`` the session's primary project; its files move on the server."""
    ctx = client.context(
        f"move session {experiment} to {dest}",
        project=project,
        permission=f"delete access to project {project} (owners only)",
    )
    await client.request(
        "PUT",
        f"{_experiment_path(project, subject, experiment)}/projects/{_q(dest)}",
        ctx,
        params={"primary": "true", "label": label, "event_reason": REASON},
        ok=(200, 201),
    )


async def change_subject_primary(
    client: XnatClient, project: str, subject: str, dest: str, label: str
) -> None:
    ctx = client.context(
        f"move subject {subject} to {dest}",
        project=project,
        permission=f"delete access to project {project} (owners only)",
    )
    await client.request(
        "PUT",
        f"/data/projects/{_q(project)}/subjects/{_q(subject)}/projects/{_q(dest)}",
        ctx,
        params={"primary": "true", "label": label, "event_reason": REASON},
        ok=(200, 201),
    )


async def delete_experiment(
    client: XnatClient,
    project: str,
    subject: str,
    experiment: str,
    *,
    remove_files: bool = True,
    reason: str = REASON,
) -> bool:
    """Delete a session through its primary project. False: it was already gone (404)."""
    ctx = client.context(
        f"delete session {experiment} from {project}",
        project=project,
        permission=f"delete access to project {project} (owners only)",
    )
    reply = await client.request(
        "DELETE",
        _experiment_path(project, subject, experiment),
        ctx,
        params={"removeFiles": "true" if remove_files else "false", "event_reason": reason},
        ok=(200, 204, 404),
    )
    return reply.status != 404


async def primary_project(client: XnatClient, experiment: str) -> str:
    """The project a session belongs to (its files are there); the others only share it."""
    ctx = client.context(f"read session {experiment}")
    found = await client.get_json(f"/data/experiments/{_q(experiment)}", ctx)
    return str(found["items"][0]["data_fields"].get("project", ""))


async def listed_in(client: XnatClient, project: str, experiment: str) -> bool:
    """Whether ``project`` still lists the session (by accession ID)."""
    return any(e.id == experiment for e in await client.experiments(project))


async def delete_subject(
    client: XnatClient,
    project: str,
    subject: str,
    *,
    remove_files: bool = True,
    reason: str = REASON,
) -> bool:
    ctx = client.context(
        f"delete subject {subject} from {project}",
        project=project,
        permission=f"delete access to project {project} (owners only)",
    )
    reply = await client.request(
        "DELETE",
        f"/data/projects/{_q(project)}/subjects/{_q(subject)}",
        ctx,
        params={"removeFiles": "true" if remove_files else "false", "event_reason": reason},
        ok=(200, 204, 404),
    )
    return reply.status != 404
