"""Demo seed of the sandbox (``--demo``), exactly as the team's sandbox contract says.

Users: ``admin``/``admin`` (site admin), ``alice``/``alice`` (owner of PILOT, member of
STUDY_A), ``bob``/``bob`` (collaborator on PILOT), ``carol``/``carol`` (no projects).

Projects:
* PILOT — prearchive_code 0 (sessions stay in the prearchive); archived session
  PIL_900/PIL_900_MR1 (MR: localizer + T1).
* STUDY_A — code 4 (auto-archive); ``applet/allow-create-subject`` = false,
  ``applet/allow-bulk-upload`` = false; subjects SA_001, SA_002, SA_003; archived
  session SA_002/SA_002_MR1.
* STUDY_B — code 5 (auto-archive, overwrite); project series import filter
  blacklisting localizers; a project anon script; archived session SB_001/SB_001_CT1.

Archived files are real, tiny DICOM (written with ``xnat_tui.dicom.synthetic``).
Prearchive entries (READY, CONFLICT, ERROR in projects, one READY in Unassigned) come
from ``xnat_tui.sandbox.demo_prearchive.seed(store, data_dir)`` when that module exists.

``seed(store)`` is idempotent per data dir: a store that already has users is left
alone, so restarting with ``--demo`` keeps what happened since.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

from xnat_tui.dicom.routing import DEFAULT_SITE_TEMPLATE, RuleSet, template_pattern
from xnat_tui.dicom.synthetic import SeriesSpec, write_study
from xnat_tui.sandbox.store import Store

log = logging.getLogger(__name__)

USERS = (
    ("admin", "admin", True, "Site", "Admin"),
    ("alice", "alice", False, "Alice", "Anderson"),
    ("bob", "bob", False, "Bob", "Brown"),
    ("carol", "carol", False, "Carol", "Clark"),
)

SERIES_FILTER = {
    "mode": "blacklist",
    "enabled": "true",
    "list": "^.*[Ll][Oo][Cc][Aa][Ll][Ii][SsZz][Ee][Rr].*$\n^.*[Ss][Cc][Oo][Uu][Tt].*$",
    "projectId": "STUDY_B",
}

STUDY_B_ANON = """version "6.1"
// STUDY_B project anonymization: keep the study, drop identifying free text.
(0008,0080) := "STUDY_B site"
(0008,0090) := ""
(0010,0030) := ""
(0010,1000) := ""
(0010,21B0) := ""
(0032,4000) := ""
- (0008,1070)
"""

MODALITY_TYPES = {
    "MR": ("xnat:mrSessionData", "xnat:mrScanData"),
    "CT": ("xnat:ctSessionData", "xnat:ctScanData"),
    "PT": ("xnat:petSessionData", "xnat:petScanData"),
}


# The demo site's DICOM receiver routes by the site convention xnat://P/S/E in Study
# Description (custom routing rules, xnat-api.md §8.2), before XNAT's fixed extractors.
DICOM_RULES = RuleSet.from_pattern(template_pattern(DEFAULT_SITE_TEMPLATE))


def seed(store: Store) -> bool:
    """Seed an empty store. Returns False (and changes nothing) if it has users."""
    if not store.is_empty():
        return False
    for login, password, admin, first, last in USERS:
        store.add_user(
            login,
            password,
            admin=admin,
            firstname=first,
            lastname=last,
            email=f"{login}@sandbox.invalid",
        )
    store.create_project(
        "PILOT",
        user="alice",
        secondary_id="Pilot",
        name="Pilot study",
        description="Scanner pilot acquisitions; sessions wait in the prearchive.",
        pi_firstname="Alice",
        pi_lastname="Anderson",
        prearchive_code=0,
    )
    store.set_role("PILOT", "bob", "collaborator")
    store.create_project(
        "STUDY_A",
        user="admin",
        secondary_id="Study A",
        name="Study A (auto-archive)",
        description="Longitudinal MR study; new subjects are created by the coordinator.",
        pi_firstname="Ada",
        pi_lastname="Lovelace",
        prearchive_code=4,
        aliases=("STUDYA",),
    )
    store.set_role("STUDY_A", "alice", "member")
    store.put_config("applet", "allow-create-subject", "false", user="admin", project="STUDY_A")
    store.put_config("applet", "allow-bulk-upload", "false", user="admin", project="STUDY_A")
    store.create_project(
        "STUDY_B",
        user="admin",
        secondary_id="Study B",
        name="Study B (overwrite)",
        description="CT/PET study with a series import filter and a project anon script.",
        pi_firstname="Grace",
        pi_lastname="Hopper",
        prearchive_code=5,
    )
    store.put_config(
        "seriesImportFilter",
        "config",
        json.dumps(SERIES_FILTER),
        user="admin",
        project="STUDY_B",
    )
    store.put_config("anon", "projects/STUDY_B", STUDY_B_ANON, user="admin", project="STUDY_B")
    for label in ("SA_001", "SA_002", "SA_003"):
        store.create_subject("STUDY_A", label, "admin", grp="control")

    _archive_session(
        store,
        "PILOT",
        "PIL_900",
        "PIL_900_MR1",
        "alice",
        [SeriesSpec("MR", 1, "localizer", 3), SeriesSpec("MR", 2, "T1_MPRAGE_sag", 4)],
        study_date="20231105",
    )
    _archive_session(
        store,
        "STUDY_A",
        "SA_002",
        "SA_002_MR1",
        "admin",
        [SeriesSpec("MR", 2, "T1_MPRAGE_sag", 3), SeriesSpec("MR", 3, "T2_FLAIR_ax", 2)],
        study_date="20240301",
    )
    _archive_session(
        store,
        "STUDY_B",
        "SB_001",
        "SB_001_CT1",
        "admin",
        [SeriesSpec("CT", 2, "Chest 1.0 B30f", 3)],
        study_date="20240212",
    )
    _seed_prearchive(store)
    return True


def _archive_session(
    store: Store,
    project: str,
    subject: str,
    label: str,
    user: str,
    series: list[SeriesSpec],
    *,
    study_date: str,
) -> str:
    modality = series[0].modality
    session_type, scan_type = MODALITY_TYPES.get(modality, MODALITY_TYPES["MR"])
    subject_id, _ = store.get_or_create_subject(project, subject, user)
    session_dir = store.experiment_dir(project, label)
    for spec in series:
        spec.folder = f"SCANS/{spec.series_number}/DICOM"
    study = write_study(
        session_dir,
        patient_id=subject,
        patient_name=f"{subject}^Demo",
        study_date=study_date,
        study_description=f"{project} demo",
        series=series,
    )
    experiment_id = store.create_experiment(
        project,
        subject_id,
        label,
        session_type,
        user,
        date=f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}",
        time="09:30:00",
        uid=study.study_instance_uid,
        modality=modality,
        dcm_patient_id=subject,
        dcm_patient_name=study.patient_name,
    )
    for written in study.series:
        scan_pk = store.add_scan(
            experiment_id,
            str(written.series_number),
            type=written.series_description,
            series_description=written.series_description,
            xsi_type=scan_type,
            uid=written.series_instance_uid,
            modality=written.modality,
            frames=str(len(written.paths)),
        )
        resource = store.get_or_create_resource(experiment_id, scan_pk, "DICOM")
        for path in written.paths:
            store.add_file(resource, path.name, path, file_format="DICOM", file_content="RAW")
    return experiment_id


def _seed_prearchive(store: Store) -> None:
    try:
        module = importlib.import_module("xnat_tui.sandbox.demo_prearchive")
    except ModuleNotFoundError as exc:
        if exc.name != "xnat_tui.sandbox.demo_prearchive":
            raise
        log.info("demo_prearchive not available; no prearchive demo entries")
        return
    seed_fn = getattr(module, "seed", None)
    if seed_fn is not None:
        seed_fn(store, Path(store.data_dir))
