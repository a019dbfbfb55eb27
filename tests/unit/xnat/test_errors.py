from __future__ import annotations

from xnat_tui.xnat.errors import (
    Conflict,
    ErrorContext,
    NotFound,
    PermissionDenied,
    RequestRejected,
    ServerError,
    error_for_status,
    extract_server_message,
)

TOMCAT_400 = (
    '<!doctype html><html lang="en"><head><title>HTTP Status 400 – Bad Request</title>'
    "<style>h1 {color:red}</style></head><body><h1>HTTP Status 400 – Bad Request</h1>"
    '<hr class="line" /><p><b>Type</b> Status Report</p><p><b>Message</b> unable to read '
    "DICOM object scan/1.dcm &amp; more</p><p><b>Description</b> The server cannot or will "
    "not process the request.</p><hr /><h3>Apache Tomcat/9.0.82</h3></body></html>"
)
OLD_TOMCAT = (
    "<html><head><title>Apache Tomcat/7.0 - Error report</title></head><body>"
    "<h1>HTTP Status 409 - Specified label is already in use.</h1><p><b>type</b> Status "
    "report</p><p><b>message</b> <u>Specified label is already in use.</u></p></body></html>"
)
CTX = ErrorContext(action="upload to project P", user="alice", project="P")


def test_tomcat_message_is_extracted_and_unescaped() -> None:
    assert extract_server_message(TOMCAT_400, "text/html") == (
        "unable to read DICOM object scan/1.dcm & more"
    )
    assert extract_server_message(OLD_TOMCAT, "text/html;charset=utf-8") == (
        "Specified label is already in use."
    )


def test_markup_inside_the_message_is_dropped_but_comparisons_stay() -> None:
    login_failed = TOMCAT_400.replace(
        "unable to read DICOM object scan/1.dcm &amp; more",
        "Your login attempt failed. You can:&lt;ul&gt;&lt;li&gt;Unlock it by resetting your "
        "password&lt;/li&gt;&lt;li&gt;Wait one hour&lt;/li&gt;&lt;/ul&gt;",
    )
    assert extract_server_message(login_failed, "text/html") == (
        "Your login attempt failed. You can: Unlock it by resetting your password Wait one hour"
    )
    compare = TOMCAT_400.replace("scan/1.dcm &amp; more", "a &lt; b &gt; c")
    assert extract_server_message(compare, "text/html") == "unable to read DICOM object a < b > c"


def test_plain_text_and_unknown_html() -> None:
    assert extract_server_message("  Session already exists\n", "text/plain") == (
        "Session already exists"
    )
    assert extract_server_message("<html><body><p>Oops</p></body></html>") == "Oops"
    assert len(extract_server_message("x" * 5000)) <= 500


def test_status_mapping_and_messages() -> None:
    forbidden = error_for_status(
        403, "nope", ErrorContext("archive", user="bob", permission="edit access to project P")
    )
    assert isinstance(forbidden, PermissionDenied)
    assert "bob lacks edit access to project P" in str(forbidden)
    assert "nope" in str(forbidden) and not forbidden.retriable

    missing = error_for_status(404, "", CTX)
    assert isinstance(missing, NotFound)
    assert "project P is not visible to user alice or does not exist" in str(missing)

    conflict = error_for_status(409, "Specified label is already in use.", CTX)
    assert isinstance(conflict, Conflict) and "already in use" in str(conflict)
    assert isinstance(error_for_status(400, "bad", CTX), Conflict)
    assert isinstance(error_for_status(405, "", CTX), RequestRejected)


def test_server_errors_retriable_except_disk_full_and_archive_conflicts() -> None:
    flaky = error_for_status(503, "", CTX)
    assert isinstance(flaky, ServerError) and flaky.retriable
    full = error_for_status(500, "java.io.IOException: No space left on device", CTX)
    assert isinstance(full, ServerError) and not full.retriable
    assert "disk space" in str(full) and "resumed" in full.hint
    uid = error_for_status(500, "FAILED: Invalid modification of session UID via archive", CTX)
    assert isinstance(uid, Conflict) and not uid.retriable
    locked = error_for_status(423, "Duplicate archive attempt.", CTX)
    assert isinstance(locked, Conflict) and locked.retriable
