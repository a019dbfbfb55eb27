"""Runs parsed statements against one pydicom dataset (dicom.md §1.4 semantics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataset import Dataset

from . import tagpaths
from .errors import AnonymizationError
from .functions import PURE_FUNCTIONS, FunctionError, compiled_regex, hash_uid
from .nodes import (
    Assign,
    Call,
    Condition,
    Conditional,
    Delete,
    DeleteBatch,
    Describe,
    IfBlock,
    Num,
    Op,
    PathValue,
    RemoveAllPrivate,
    SetVar,
    Statement,
    Str,
    Value,
    Var,
    Version,
)
from .values import ValueError_, convert_for_vr, element_string


class _Failure(Exception):
    """Internal: an evaluation error before the line number is attached."""


class Run:
    """State of one script applied to one dataset."""

    def __init__(
        self,
        ds: Dataset,
        *,
        script: str,
        script_sha: str,
        variables: dict[str, str | None],
        lookup: Mapping[str, Mapping[str, str]] | None,
        uid_seed: str,
    ) -> None:
        self.ds = ds
        self.script = script
        self.script_sha = script_sha
        self.variables = variables
        self.lookup = lookup
        self.uid_seed = uid_seed
        self.new_uid_calls = 0

    # ---- statements ---------------------------------------------------------------

    def execute(self, statements: Sequence[Op]) -> None:
        for stmt in statements:
            try:
                self.statement(stmt)
            except AnonymizationError:
                raise
            except (_Failure, FunctionError, ValueError_, tagpaths.PathError) as exc:
                raise AnonymizationError(str(exc), script=self.script, line=stmt.line) from None
            except Exception as exc:  # a pydicom surprise must still name the line
                raise AnonymizationError(
                    f"{type(exc).__name__}: {exc}", script=self.script, line=stmt.line
                ) from exc

    def statement(self, stmt: Op) -> None:
        if isinstance(stmt, DeleteBatch):
            tagpaths.delete_batch(
                self.ds, stmt.top_exact, stmt.top_masks, stmt.nested_exact, stmt.nested_masks
            )
        elif isinstance(stmt, Assign):
            self.assign(stmt)
        elif isinstance(stmt, Delete):
            for container, tag in tagpaths.find(self.ds, stmt.path):
                if tag in container._dict:
                    del container[tag]
        elif isinstance(stmt, SetVar):
            self.variables[stmt.name] = self.value(stmt.value)
        elif isinstance(stmt, Conditional):
            if self.condition(stmt.condition):
                self.statement(stmt.then)
            elif stmt.otherwise is not None:
                self.statement(stmt.otherwise)
        elif isinstance(stmt, IfBlock):
            for cond, body in stmt.branches:
                if self.condition(cond):
                    self.execute(body)
                    return
            if stmt.otherwise is not None:
                self.execute(stmt.otherwise)
        elif isinstance(stmt, RemoveAllPrivate):
            tagpaths.remove_private(self.ds)
        elif isinstance(stmt, Version | Describe):
            return
        else:  # pragma: no cover - the parser builds no other node
            raise _Failure(f"unknown statement {stmt!r}")

    def assign(self, stmt: Assign) -> None:
        path = stmt.path
        if stmt.if_exists:
            matches = tagpaths.find(self.ds, path)
            if not matches:
                return
            text = self.value(stmt.value)
            for container, tag in matches:
                self.store(container, tag, text, path.text)
            return
        text = self.value(stmt.value)
        if text is None:
            return  # as store(): a null assignment creates nothing, not even sequence items
        container = tagpaths.container_for(self.ds, path)
        final = path.final
        if final.creator is not None:
            target = tagpaths.private_target(container, final, create=True)
            assert target is not None
            tag = target
        else:
            tag = final.value
        self.store(container, tag, text, path.text)

    def store(self, container: Dataset, tag: int, text: str | None, where: str) -> None:
        if text is None:
            # mizer's assign(): "Failed to assign null value to tag" — logged, nothing done.
            return
        if tag in container._dict:
            elem = container[tag]
            elem.value = convert_for_vr(elem.VR, text)
            return
        creator = None
        if tag >> 16 & 1 and (tag & 0xFFFF) > 0xFF:
            creator = container.get((tag & 0xFFFF0000) | ((tag >> 8) & 0xFF))
        try:
            if creator is not None:
                vr = private_dictionary_VR(tag, str(creator.value).strip())
            else:
                vr = dictionary_VR(tag)
        except KeyError:
            raise _Failure(f"cannot create {where}: its VR is not in the dictionary") from None
        container.add_new(tag, vr.split(" or ")[0], convert_for_vr(vr, text))

    # ---- conditions and values ----------------------------------------------------

    def condition(self, cond: Condition) -> bool:
        left = self.value(cond.left)
        right = self.value(cond.right)
        if cond.op == "=":
            return left is not None and right is not None and left == right
        if cond.op == "!=":
            return not (left is not None and right is not None and left == right)
        if left is None:  # DicomEdit: null never matches (and the regex is not evaluated)
            return cond.op == "!~"
        if right is None:
            raise _Failure(f"the regular expression of '{cond.op}' is null")
        matched = compiled_regex(right).fullmatch(left) is not None
        return matched if cond.op == "~" else not matched

    def value(self, value: Value) -> str | None:
        if isinstance(value, Str | Num):
            return value.value
        if isinstance(value, PathValue):
            exact = value.path.final.exact
            if not value.path.steps and exact is not None and exact >> 16 == 0x0002:
                # File meta elements live outside the dataset in pydicom.
                meta = getattr(self.ds, "file_meta", None)
                if meta is None or exact not in meta._dict:
                    return None
                return element_string(meta[exact])
            matches = tagpaths.find(self.ds, value.path)
            if not matches:
                return None
            if len(matches) > 1:
                raise _Failure(
                    f"Path matching multiple tags not allowed as term: {value.path.text}"
                )
            container, tag = matches[0]
            return element_string(container[tag])
        if isinstance(value, Var):
            if value.name not in self.variables:
                raise _Failure(f"Unknown variable: {value.name}")
            return self.variables[value.name]
        return self.call(value)

    def call(self, call: Call) -> str | None:
        args = [self.value(a) for a in call.args]
        if call.name == "newUID":
            # DicomEdit's newUID is random; ours is derived from the input file so a retry
            # re-sends identical bytes, while different files still get different UIDs.
            self.new_uid_calls += 1
            seed = f"newUID/{self.uid_seed}/{self.script_sha}/{call.line}:{call.column}"
            return hash_uid(f"{seed}/{self.new_uid_calls}")
        if call.name == "lookup":
            if self.lookup is None:
                raise _Failure("lookup[] needs a lookup table, and none was given")
            key, val = args
            if key is None or val is None:
                return None
            return self.lookup.get(key, {}).get(val)
        return PURE_FUNCTIONS[call.name](args)


def plan(statements: Sequence[Statement]) -> tuple[Op, ...]:
    """Statements with runs of plain deletions folded into DeleteBatch nodes."""
    out: list[Op] = []
    run: list[Delete] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0])
        elif run:
            top_exact: set[int] = set()
            nested_exact: set[int] = set()
            top_masks: list[tuple[int, int]] = []
            nested_masks: list[tuple[int, int]] = []
            for d in run:
                final = d.path.final
                kind = d.path.steps[0].kind if d.path.steps else "top"
                exact = final.exact
                if kind in ("top", "star"):
                    if exact is not None:
                        top_exact.add(exact)
                    else:
                        top_masks.append((final.mask, final.value))
                if kind in ("plus", "star"):
                    if exact is not None:
                        nested_exact.add(exact)
                    else:
                        nested_masks.append((final.mask, final.value))
            out.append(
                DeleteBatch(
                    run[0].line,
                    frozenset(top_exact),
                    tuple(top_masks),
                    frozenset(nested_exact),
                    tuple(nested_masks),
                )
            )
        run.clear()

    for stmt in statements:
        if isinstance(stmt, Delete) and tagpaths.batchable(stmt.path):
            run.append(stmt)
            continue
        flush()
        if isinstance(stmt, IfBlock):
            stmt = IfBlock(
                stmt.line,
                tuple((c, _as_statements(plan(body))) for c, body in stmt.branches),
                None if stmt.otherwise is None else _as_statements(plan(stmt.otherwise)),
            )
        out.append(stmt)
    flush()
    return tuple(out)


def _as_statements(ops: tuple[Op, ...]) -> tuple[Statement, ...]:
    # IfBlock bodies are typed as statements; batches run through the same dispatcher.
    return ops  # type: ignore[return-value]
