"""Any script the parser accepts either anonymizes a file or fails it with a line number."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xnat_tui.dicom.dicomedit import AnonymizationError, Anonymizer, Script, ScriptError, encode

from ._data import VARS, vector_dataset, with_meta

TARGETS = [
    "(0010,0010)",
    "(0008,103E)",
    "(0020,000D)",
    "(0020,0011)",
    "(0028,0010)",
    "(0008,0008)",
    "(0010,1010)",
    "(0008,0020)",
    "(0008,1140)[0]/(0008,1155)",
    "(0040,0275)[1]/(0040,1001)",
    "(0019,{SIEMENS MR HEADER}0C)",
]
DELETIONS = TARGETS + [
    "(XXX#,XXXX)",
    "*/(0008,1155)",
    "+/(0021,XXXX)",
    "./(0008,1150)",
    "(0008,1140)[%]/(0008,1155)",
    "(50X@,XXXX)",
    "(0008,1140)",
]
LEAVES = st.sampled_from(
    ['"x"', '""', '"a\\\\b"', '"{0}-{1}"', '"12"', "3", "0", "subject", "project", "newvar"]
    + TARGETS
    + ["*/(0008,1155)"]
)


def _call(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    one = st.sampled_from(["hashUID", "uppercase", "lowercase"])
    return st.one_of(
        st.builds(lambda f, a: f"{f}[{a}]", one, children),
        st.builds(lambda a, b, c: f"substring[{a}, {b}, {c}]", children, children, children),
        st.builds(lambda a, b, c: f"replace[{a}, {b}, {c}]", children, children, children),
        st.builds(lambda a, b: f"format[{a}, {b}]", children, children),
        st.builds(lambda a, b: f"concatenate[{a}, {b}]", children, children),
        st.builds(lambda a: f'match[{a}, "(.)(.*)", 1]', children),
        st.just("newUID[]"),
    )


VALUES = st.recursive(LEAVES, _call, max_leaves=4)
OPS = st.sampled_from(["=", "!=", "~", "!~"])
ACTIONS = st.one_of(
    st.builds(lambda t, v: f"{t} := {v}", st.sampled_from(TARGETS), VALUES),
    st.builds(lambda t, v: f"{t} ?= {v}", st.sampled_from(TARGETS), VALUES),
    st.builds(lambda t: f"-{t}", st.sampled_from(DELETIONS)),
    st.builds(lambda v: f"newvar := {v}", VALUES),
)
STATEMENTS = st.one_of(
    ACTIONS,
    st.builds(lambda a, o, b, x: f"{a} {o} {b} ? {x}", VALUES, OPS, VALUES, ACTIONS),
    st.builds(
        lambda a, o, b, x, y: f"if ({a} {o} {b}) {{\n{x}\n}} else {{ {y} }}",
        VALUES,
        OPS,
        VALUES,
        ACTIONS,
        ACTIONS,
    ),
    st.just("removeAllPrivateTags"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STATEMENTS, min_size=1, max_size=6))
def test_accepted_scripts_succeed_or_fail_the_file_cleanly(statements: list[str]) -> None:
    text = 'version "6.2"\n' + "\n".join(statements) + "\n"
    try:
        script = Script.parse(text, "fuzz")
    except ScriptError as err:
        assert err.line >= 2
        return
    anon = Anonymizer([script], VARS)
    ds = with_meta(vector_dataset())
    try:
        anon.apply(ds)
    except AnonymizationError as err:
        assert 2 <= err.line <= text.count("\n")
        return
    ds2 = with_meta(vector_dataset())
    anon.apply(ds2)
    assert encode(ds) == encode(ds2)  # deterministic
