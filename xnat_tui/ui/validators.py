"""The pure label rules of ``workflow.labels`` as Textual validators.

The Input sets its ``-valid``/``-invalid`` classes from these as the user types;
server-side checks (merge/conflict) run separately in a debounced worker.
"""

from __future__ import annotations

from textual.validation import ValidationResult, Validator

from xnat_tui.workflow import labels


class LabelRule(Validator):
    def __init__(self, what: str = "label") -> None:
        super().__init__(failure_description=f"invalid {what}")
        self.what = what

    def validate(self, value: str) -> ValidationResult:
        problem = labels.label_problem(value, self.what)
        return self.success() if problem is None else self.failure(problem, value)


class PatternRule(Validator):
    """A label pattern such as ``{PatientID}_{StudyDate}``: well-formed fields only."""

    def validate(self, value: str) -> ValidationResult:
        from xnat_tui.workflow.templates import TemplateError, template_fields

        if not value.strip():
            return self.failure("The pattern is empty.", value)
        try:
            template_fields(value)
        except TemplateError as exc:
            return self.failure(str(exc), value)
        return self.success()
