"""Store and table rendering units (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from xnat_tui.sandbox.store import Store, StoreError
from xnat_tui.sandbox.tables import Table, cell, choose_columns, query_table, to_csv, to_xml


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db")
    s.add_user("u", "pw")
    s.create_project("P", user="u", aliases=("ALIAS",))
    return s


def test_accession_ids_and_label_uniqueness(store: Store) -> None:
    sid, created = store.get_or_create_subject("P", "S1", "u")
    assert (sid, created) == ("XNAT_S00001", True)
    assert store.get_or_create_subject("P", "S1", "u") == (sid, False)
    assert store.find_subject_ci("P", "s1")["id"] == sid
    assert store.find_subject("P", "s1") is None  # REST lookups are case-sensitive
    eid = store.create_experiment("P", sid, "E1", "xnat:mrSessionData", "u", uid="1.2.3")
    assert eid == "XNAT_E00001"
    with pytest.raises(StoreError):
        store.create_experiment("P", sid, "E1", "xnat:mrSessionData", "u")
    with pytest.raises(StoreError):
        store.create_project("P", user="u")
    assert store.resolve_project("ALIAS")["id"] == "P"
    assert store.roles_of("u") == {"P": "owner"}


def test_nested_transactions_roll_back_together(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.create_subject("P", "A", "u")
        with store.transaction():
            store.create_subject("P", "B", "u")
        raise RuntimeError("abort")
    assert store.list_subjects("P") == []


def test_scans_files_and_digests(store: Store, tmp_path: Path) -> None:
    sid, _ = store.get_or_create_subject("P", "S1", "u")
    eid = store.create_experiment("P", sid, "E1", "xnat:mrSessionData", "u")
    pk = store.add_scan(eid, "10", type="T1")
    assert store.add_scan(eid, "10") == pk  # existing scan is returned
    store.add_scan(eid, "2")
    assert [s["scan_id"] for s in store.list_scans(eid)] == ["2", "10"]  # natural order
    rid = store.get_or_create_resource(eid, pk)
    assert store.get_or_create_resource(eid, pk) == rid
    path = store.experiment_dir("P", "E1") / "SCANS" / "10" / "DICOM" / "a.dcm"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"hello")
    store.add_file(rid, "a.dcm", path)
    row = store.get_file(rid, "a.dcm")
    assert (row["size"], row["digest"]) == (5, "5d41402abc4b2a76b9719d911017c592")
    assert store.file_path(row) == path
    assert store.resource_stats(rid) == (1, 5)


def test_config_versions_and_status(store: Store) -> None:
    assert store.put_config("t", "p", "one", user="u") is True
    assert store.put_config("t", "p", "two", user="u") is False
    assert store.put_config("t", "p", None, user="u", status="disabled") is False
    latest = store.get_config("t", "p")
    assert (latest["contents"], latest["version"], latest["status"]) == ("two", 3, "disabled")
    assert store.get_config("t", "p", version=1)["contents"] == "one"
    assert store.get_config("t", "p", project="P") is None  # scopes are separate
    assert [r["version"] for r in store.config_history("t", "p")] == [1, 2, 3]


def test_tokens(store: Store) -> None:
    token = store.issue_token("u", lifetime_ms=-1)
    assert token.expired
    fresh = store.issue_token("u")
    assert not fresh.expired and len(fresh.secret) == 64
    store.invalidate_token(fresh.alias)
    assert [t.alias for t in store.tokens_of("u")] == [token.alias]


def test_cell_and_renderers() -> None:
    assert [cell(None), cell(True), cell(3)] == ["", "true", "3"]
    table = Table(["a", "b"], [["<x>", 'q"uote'], ["1,2", ""]], {"totalRecords": "2"})
    xml = to_xml(table)
    assert "<cell>&lt;x&gt;</cell>" in xml and xml.startswith('<ResultSet totalRecords="2">')
    assert to_csv(table).splitlines() == ["a,b", '<x>,"q""uote"', '"1,2",']


def test_choose_columns() -> None:
    shortcuts = ["ID", "label", "date"]
    assert choose_columns(None, pk="ID", defaults=["label"], shortcuts=shortcuts) == [
        "ID",
        "label",
    ]
    assert choose_columns("DATE,Label,nope,ID", pk="ID", defaults=[], shortcuts=shortcuts) == [
        "ID",
        "date",
        "label",
    ]


def test_query_filters_dates_and_sorting() -> None:
    records = [
        {"ID": "1", "label": "A", "date": "2024-01-05", "URI": "/1"},
        {"ID": "2", "label": "B", "date": "2024-02-10", "URI": "/2"},
        {"ID": "3", "label": "C", "date": "2023-12-31", "URI": "/3"},
    ]

    def run(query: str) -> list[str]:
        request = make_mocked_request("GET", "/x?" + query)
        table = query_table(
            request, records, pk="ID", defaults=["label"], shortcuts=["ID", "label", "date"]
        )
        return [row["ID"] for row in table.dicts()]

    assert run("date=2024-01-01-2024-01-31") == ["1"]
    assert run("date=20240101-") == ["1", "2"]
    assert run("label=%") == ["1", "2", "3"]
    assert run("sortBy=date&sortOrder=DESC") == ["2", "1", "3"]
    assert run("unknown=zzz") == ["1", "2", "3"]
    assert run("date=01/01/2024-02/28/2024") == ["1", "2"]
    assert run("date=-20231231") == ["3"]
    assert run("date=2024-02-10") == ["2"]


def test_experiment_dir_never_leaves_the_archive(store: Store) -> None:
    root = store.archive_root.resolve()
    for label in ("..", ".", "", "a/../../b", "x\\y"):
        path = store.experiment_dir("P", label).resolve()
        assert path.is_relative_to(root) and path != root / "P" / "arc001"
    assert store.experiment_dir("P", "S1_MR1") == store.archive_root / "P" / "arc001" / "S1_MR1"
