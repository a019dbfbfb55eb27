"""Parser: fail closed with a position, accept the real-world scripts of dicom.md §1.3."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xnat_tui.dicom.dicomedit import Anonymizer, Script, ScriptError, required_variables

from ._data import VARS, run, vector_dataset

SITE_HEADER = """version "6.1"
// Identity, as the default XNAT script does it
project != "Unassigned" ? (0008,1030) := project
(0010,0010) := subject
(0010,0020) := session
(0008,0080) := "XNAT QA ingest-io"
(0012,0062) := "YES"
(0012,0063) := "XNAT QA site script"
- (0008,0081)
- (0008,0090)
-(0010,0030)   // trailing comment
- (4008,0114)
removeAllPrivateTags
"""

FLIP_STYLE = """version "6.3"\r
(0010,0010) := subject\r
(0010,0020) := session\r
(0008,0080) := "FLIP"\r
(0020,000D) := hashUID[(0020,000D)]\r
(0020,000E) := hashUID[(0020,000E)]\r
(0008,0018) := hashUID[(0008,0018)]\r
- (0008,0090)\r
"""

BASIC_2017_IDIOMS = r"""version "6.1"
(0012,0062) := "YES"
(0008,0050) ~ ".+" ? (0008,0050) := ""
-(0018,4000)
(0020,0052) ~ "\\d[\\d\\.]+" ? (0020,0052) := hashUID[(0020,0052)]
-(50X@,XXXX)
(0010,0020) := session
(0010,0010) := subject
describe site "Site code"
describe hiddenvar hidden
removeAllPrivateTags
"""


@pytest.mark.parametrize("text", [SITE_HEADER, FLIP_STYLE, BASIC_2017_IDIOMS])
def test_real_world_scripts_parse_and_run(text: str) -> None:
    script = Script.parse(text, "real.das")
    ds = vector_dataset()
    Anonymizer([script], VARS).apply(ds)
    assert ds.PatientName == "SUBJ01"
    assert ds.PatientID == "SUBJ01_MR1"


def test_flip_style_hashes_the_three_uids() -> None:
    ds = vector_dataset()
    ds.SeriesInstanceUID = "1.2.3.9"
    Anonymizer([Script.parse(FLIP_STYLE)], VARS).apply(ds)
    assert ds.StudyInstanceUID == "2.25.320361553501628158867896442310075381854"
    assert ds.SOPInstanceUID == "2.25.262228503153619312954819897114011402300"
    assert ds.SeriesInstanceUID.startswith("2.25.")


def test_regex_escapes_follow_dicomedit() -> None:
    ds = run(r'(0020,000D) ~ "\\d[\\d\\.]+" ? (0008,1030) := "uid"')
    assert ds.StudyDescription == "uid"
    # "" inside a string is a literal quote
    assert run('(0008,1030) := "say ""hi"""').StudyDescription == 'say "hi"'


@pytest.mark.parametrize(
    ("body", "line", "column", "needle"),
    [
        ("-(XXX#,XXXX) := x", 2, 14, "unexpected ':='"),
        ('(XXXX,0010) := "a"', 2, 1, "must name one element"),
        ('*/(0010,0010) := "a"', 2, 1, "must name one element"),
        ('(0008,1140)[%]/(0008,1155) := "a"', 2, 1, "must name one element"),
        ('(0008,1140)/(0008,1155) := "a"', 2, 1, "must name one element"),
        ('(0010,001) := "a"', 2, 1, "malformed tag"),
        ('(0010,0010) := "abc', 2, 16, "unterminated string"),
        (r'(0010,0010) := "a\qb"', 2, 18, "invalid escape"),
        ('(0008,{ACME}10) := "a"', 2, 1, "even group"),
        ('(0019,{UNKNOWN CREATOR}10) := "a"', 2, 1, "VR"),
        ('(0009,9999) := "a"', 2, 1, "dictionary"),
        ('(0010,0010) := format["{0", subject]', 2, 23, "Unmatched braces"),
        ('(0010,0010) := format["{0,number}", subject]', 2, 23, "not supported"),
        ('(0010,0010) ~ "([" ? (0010,0010) := "x"', 2, 15, "regular expression"),
        ("(0010,0010) := substring[(0010,0010)]", 2, 16, "takes 2-3"),
        ('version "6.1"', 2, 1, "second version"),
        ('if ((0008,0060) = "MR") {\n(0008,1030) := "x"\n', 5, 1, "missing '}'"),
        ('echo "hi"', 2, 1, "echo"),
        ("(0010,0010) := subject extra", 2, 24, "after the statement"),
        ("}", 2, 1, "unexpected '}'"),
    ],
)
def test_rejections_name_line_and_column(body: str, line: int, column: int, needle: str) -> None:
    with pytest.raises(ScriptError) as err:
        Script.parse(f'version "6.1"\n{body}\n', "p.das")
    assert needle in err.value.message
    assert (err.value.line, err.value.column) == (line, column)
    assert str(err.value).startswith(f"p.das:{line}:{column}: ")


def test_version_line_must_stand_alone() -> None:
    with pytest.raises(ScriptError, match="on its own line"):
        Script.parse('version "6.1" // site\n')
    with pytest.raises(ScriptError, match="DicomEdit 4"):
        Script.parse("")


def test_private_creator_assign_if_exists_and_known_creation() -> None:
    ds = run('(0019,{SIEMENS MR HEADER}0C) ?= "7"')
    assert ds[0x0019100C].value == 7 or str(ds[0x0019100C].value) == "7"
    # A creator-relative element pydicom's private dictionary knows can be created.
    ds = vector_dataset()
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds = run('(0029,{SIEMENS CSA HEADER}08) := "IMAGE NUM 4"', ds)
    assert ds[0x00291008].value == "IMAGE NUM 4"
    # Without the creator, the first free slot is reserved for it (mizer does the same).
    ds = vector_dataset()
    ds.add_new(0x00290010, "LO", "OTHER VENDOR")
    ds = run('(0029,{SIEMENS CSA HEADER}08) := "IMAGE NUM 4"', ds)
    assert ds[0x00290011].value == "SIEMENS CSA HEADER"  # (0029,0010) is taken
    assert ds[0x00291108].value == "IMAGE NUM 4"


def test_required_variables_lists_what_to_ask() -> None:
    site = Script.parse('version "6.1"\n(0010,0010) := format["{0}_{1}", site, subject]\n')
    project = Script.parse(
        'version "6.1"\ndescribe visit "Visit number"\n'
        "local := visit\n(0008,1030) := concatenate[local, modalityLabel]\n"
        "describe modalityLabel hidden\n"
    )
    req = required_variables([site, project])
    assert [(r.name, r.description, r.hidden) for r in req] == [
        ("site", "", False),
        ("visit", "Visit number", False),
        ("modalityLabel", "", True),
    ]


SNIPPETS = [
    'version "6.1"',
    'version "6.7"',
    "(0010,0010)",
    "(0019,{ACME}0C)",
    "(XXX#,XXXX)",
    "(0008,1140)[1]/",
    "*/",
    "+/",
    "./",
    ":=",
    "?=",
    "-",
    "=",
    "!=",
    "~",
    "!~",
    "?",
    ":",
    '"text"',
    '"a\\\\b"',
    '"{0}_{1}"',
    "subject",
    "project",
    "hashUID[",
    "format[",
    "substring[",
    "lookup[",
    "]",
    ",",
    "if (",
    ")",
    "{",
    "}",
    "elseif",
    "else",
    "removeAllPrivateTags",
    "describe x hidden",
    "42",
    "-1",
    "// comment",
    "\n",
    " ",
    "export",
    "alterPixels[",
    "\\",
    "é",
    "(",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SNIPPETS), max_size=30), st.text(max_size=20))
def test_fuzz_parser_accepts_or_rejects_with_position(parts: list[str], noise: str) -> None:
    text = 'version "6.1"\n' + " ".join(parts) + noise
    try:
        script = Script.parse(text, "fuzz")
    except ScriptError as err:
        assert err.line >= 1
        assert err.column >= 1
        assert err.line <= text.count("\n") + text.count("\r") + 1
        return
    assert script.version == "6.1"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_arbitrary_text_never_crashes(text: str) -> None:
    try:
        Script.parse(text, "fuzz")
    except ScriptError as err:
        assert err.line >= 1 and err.column >= 1


def test_line_numbers_count_only_real_newlines() -> None:
    script = Script.parse('// a\x0c form feed and \x85 next-line in a comment\nversion "6.1"\n')
    assert script.version == "6.1"
    with pytest.raises(ScriptError) as err:
        Script.parse('version "6.1"\r\n// \x0c\r\n(0010,0010) := \r\n')
    assert err.value.line == 3
