"""OPA's own compliance cases, run on the embedded Wasm engine: no case may get a wrong answer.

Every case of OPA v1.22.2's ``v1/test/cases/testdata/v1`` whose query is
``data.<path> = <var>`` is compiled with ``opa build -t wasm`` for that entry point,
loaded with its data, evaluated with its input and judged by the rules of OPA's own
Wasm e2e test (``tests.compliance.verdict``). A case may be refused (the engine
lacks a host builtin it needs: the decision would go to OPA instead) or excepted
(``tests.compliance.exceptions``), never answered wrongly. The summary table is
printed; ``python -m tests.compliance.run --summary`` prints the same.
"""

from __future__ import annotations

import pytest

from tests.compliance.cases import CasesMissing, applicable, cases_dir, load_cases
from tests.compliance.exceptions import EXCEPTIONS
from tests.compliance.suite import run_suite

pytestmark = pytest.mark.integration


def test_every_exception_names_an_applicable_case() -> None:
    try:
        notes = {c.note for c in load_cases(cases_dir()) if applicable(c) is not None}
    except CasesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    assert sorted(set(EXCEPTIONS) - notes) == []


def test_no_compliance_case_gets_a_wrong_answer(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        report = run_suite()
    except CasesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with capsys.disabled():
        print("\n" + report.summary(top=15))
    assert report.of("pass"), "no case passed: the harness or the engine is broken"
    wrong = report.of("wrong")
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(f"{v.case_id}: {v.reason}" for v in wrong)
