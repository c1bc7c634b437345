"""The adversarial corpus against a running Statelock in front of ``nova_wsgi``.

Every case is sent as raw bytes on its own connection while two servers are
locked. For each: every response has an allowed status, an answer Statelock made
itself is Nova-shaped JSON, nothing state-changing reached a locked server as far
as Nova's own parsing goes, the locks are still there, and the health endpoint
still answers 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.corpus import Case, load_corpus
from tests.adversarial.harness import ADMIN, OWNER, PROJECT, LiveStack, RawResponse, live_stack

CASES = load_corpus()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("corpus")) as running:
        yield running


def macros(stack: LiveStack) -> dict[str, str]:
    std_head = "Host: statelock\nX-Auth-Token: $OWNER\nConnection: close"
    return {
        "SID": stack.locked, "SIDU": stack.locked.upper(), "SIDN": stack.locked.replace("-", ""),
        "OSID": stack.owner_locked, "FREE": stack.free, "PROJ": PROJECT,
        "STD": std_head + "\nContent-Type: application/json", "AUTH": std_head,
        "OWNER": OWNER, "ADMIN": ADMIN,
    }


def render(case: Case, stack: LiveStack) -> bytes:
    values = macros(stack)
    if case.exact:
        values = {k: v.replace("\n", "\r\n") for k, v in values.items()}
    # NOTE: STD and AUTH hold $OWNER themselves, so expand them first.
    once = case.template
    for key in ("STD", "AUTH"):
        once = once.replace("$" + key, values[key])
    return Case(case.name, case.file, once, case.exact, case.expect).render(values)


def check_shape(case: Case, resp: RawResponse) -> None:
    """A Statelock answer is Nova-shaped JSON; an upstream answer carries nova_wsgi's marker."""
    expect = case.expect
    if expect.by == "upstream":
        assert resp.from_upstream, f"{case.name}: expected the upstream to answer, got {resp}"
    elif expect.by == "statelock":
        assert not resp.from_upstream, f"{case.name}: the upstream answered: {resp}"
    if resp.from_upstream or resp.status < 400 or expect.head:
        return
    is_json = (resp.header("Content-Type") or "").startswith("application/json")
    if expect.shape == "plain" or (expect.shape == "any" and not is_json):
        # NOTE: aiohttp's parser (400) and router (404: a target the catch-all route
        # cannot match, such as "*" or a decoded newline) answer in plain text.
        assert resp.status in (400, 404, 405, 413, 417), resp
        return
    assert is_json, f"{case.name}: not JSON: {resp}"
    doc = resp.json()
    assert isinstance(doc, dict) and len(doc) == 1, doc
    name, fault = next(iter(doc.items()))
    if resp.status == 401:
        assert name == "error" and fault["code"] == 401
        return
    assert fault["code"] == resp.status and isinstance(fault["message"], str) and fault["message"], doc
    if expect.fault:
        assert name == expect.fault, f"{case.name}: fault {name}, wanted {expect.fault}"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file}:{c.name}" for c in CASES])
def test_corpus_case(stack: LiveStack, case: Case) -> None:
    stack.nova.clear()
    got = stack.send(render(case, stack), responses=case.expect.responses, head=case.expect.head)
    assert got.responses or case.expect.responses == 0, f"{case.name}: no response"
    for resp in got.responses:
        assert resp.status in case.expect.status, f"{case.name}: {resp.status} {resp.body[:300]!r}"
        assert 200 <= resp.status < 500, resp
        check_shape(case, resp)
    assert stack.forbidden_executions() == [], f"{case.name}: reached Nova"
    executed = {e.name for e in stack.nova.executions}
    assert set(case.expect.executed) <= executed, f"{case.name}: executed {executed}"
    assert stack.health().status == 200
    assert stack.lock_count() == 2


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 200
    assert {c.file for c in CASES} >= {"path", "query", "body", "transport", "headers", "limits"}


def test_corpus_file_exists() -> None:
    assert (Path(__file__).parent / "corpus").is_dir()
