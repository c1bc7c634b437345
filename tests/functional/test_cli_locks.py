"""``statelock locks ...`` against a running Statelock: what an operator reads when it refuses."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.cli import main
from tests.functional.conftest import Stack


@pytest.mark.parametrize(("token", "said"), [(None, "no token was given"),
                                             ("garbage", "the token given was not accepted")])
async def test_a_401_names_the_token_option_and_the_noauth_form(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    token: str | None, said: str,
) -> None:
    for name in ("STATELOCK_TOKEN", "OS_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    url = str(stack.client.server.make_url("")).rstrip("/")
    argv = ["locks", "list", "--url", url, *(["--token", token] if token else [])]
    assert await asyncio.to_thread(main, argv) == 1
    err = capsys.readouterr().err
    assert "refused with 401" in err and said in err
    assert "--token" in err and "STATELOCK_TOKEN" in err and "user:project[:role1,role2]" in err


async def test_a_good_token_lists(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    url = str(stack.client.server.make_url("")).rstrip("/")
    argv = ["locks", "list", "--url", url, "--token", "billing-svc:service:billing"]
    assert await asyncio.to_thread(main, argv) == 0
    assert capsys.readouterr().out.strip() == "no locks"
