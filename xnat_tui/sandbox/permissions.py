"""Who may do what in the sandbox: site admins, and per-project roles.

API (stable):

* ``User`` — the authenticated user of a request (``request[keys.USER]``; use
  ``request_user(request)``): ``login``,
  ``admin``, ``roles`` (project ID → ``owner|member|collaborator``), ``guest``.
* ``load_user(store, login) -> User | None``.
* ``can_read(user, project)`` — owner, member, collaborator, site admin.
* ``can_edit(user, project)`` — owner, member, site admin: create subjects and
  sessions, upload, archive, move prearchive sessions, set ``prearchive_code``.
* ``can_delete(user, project)`` — owner, site admin: delete, project-level config.
* ``readable_project(store, user, project_id_or_alias, message=None) -> sqlite3.Row``
  — the project row, or raises 404 when it does not exist *or* the user may not see
  it (XNAT hides private projects: 404, not 403, §2.2).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from aiohttp import web

from xnat_tui.sandbox.errors import xnat_error
from xnat_tui.sandbox.store import Store


@dataclass
class User:
    login: str
    admin: bool = False
    roles: dict[str, str] = field(default_factory=dict)
    guest: bool = False

    def role(self, project: str) -> str | None:
        return self.roles.get(project)


def load_user(store: Store, login: str) -> User | None:
    row = store.get_user(login)
    if row is None:
        return None
    return User(login=str(row["login"]), admin=bool(row["admin"]), roles=store.roles_of(login))


def can_read(user: User, project: str) -> bool:
    return user.admin or user.role(project) in ("owner", "member", "collaborator")


def can_edit(user: User, project: str) -> bool:
    return user.admin or user.role(project) in ("owner", "member")


def can_delete(user: User, project: str) -> bool:
    return user.admin or user.role(project) == "owner"


def readable_project(
    store: Store, user: User, project_id: str, *, message: str | None = None
) -> sqlite3.Row:
    row = store.resolve_project(project_id)  # XNAT accepts an alias wherever an ID goes
    if row is None or not can_read(user, str(row["id"])):
        # XNAT's ProjectResource says "experiment" here (sic, copy-paste in its source).
        raise xnat_error(404, message or "Unable to find the specified experiment.")
    return row


def request_user(request: web.Request) -> User:
    """The user the auth middleware attached (every authenticated route has one)."""
    from xnat_tui.sandbox.keys import USER

    user = request.get(USER)
    if not isinstance(user, User):
        raise xnat_error(401, "Authentication required.")
    return user
