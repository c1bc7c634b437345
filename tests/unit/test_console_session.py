"""Console sessions: random cookies, expiry, logout, a bounded store, and the cookie attributes."""

from __future__ import annotations

from sidecar.handlers.ui.session import SessionStore, cookie_options, same_secret
from sidecar.identity import Subject

ALICE = Subject("alice", "demo", ("auditor",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_until_its_ttl_or_its_token_expires() -> None:
    clock = Clock()
    store = SessionStore(60.0, 10, clock)
    cookie, session = store.create("secret-token", ALICE)
    assert "secret-token" not in cookie and len(cookie) >= 43
    assert store.get(cookie) is session and store.max_age(session) == 60
    clock.now += 59.5
    assert store.get(cookie) is session
    clock.now += 1
    assert store.get(cookie) is None and len(store) == 0
    _, short = store.create("t", ALICE, token_expires_at=clock.now + 5)
    assert short.expires_at == clock.now + 5 and store.max_age(short) == 5


def test_logout_ends_a_session_and_unknown_cookies_find_none() -> None:
    store = SessionStore(60.0, 10, Clock())
    cookie, _ = store.create("t", ALICE)
    assert store.get("forged") is None and store.get(None) is None
    assert store.end(cookie) and not store.end(cookie)
    assert store.get(cookie) is None


def test_the_store_drops_the_oldest_when_full() -> None:
    store = SessionStore(60.0, 2, Clock())
    first, _ = store.create("a", ALICE)
    second, _ = store.create("b", ALICE)
    third, _ = store.create("c", ALICE)
    assert store.get(first) is None and store.get(second) is not None and store.get(third) is not None


def test_a_session_does_not_show_its_token() -> None:
    _, session = SessionStore(60.0, 2, Clock()).create("the-token", ALICE)
    assert "the-token" not in repr(session) and "alice" in repr(session)


def test_csrf_secrets_compare_only_when_both_are_there() -> None:
    assert same_secret("abc", "abc") and not same_secret("abc", "abd")
    assert not same_secret("", "") and not same_secret(None, "x") and not same_secret("x", None)


def test_cookies_are_http_only_strict_and_secure_over_tls() -> None:
    assert cookie_options(True, 30) == {"httponly": True, "samesite": "Strict", "path": "/statelock/ui/",
                                        "secure": True, "max_age": 30}
    assert cookie_options(False, None)["secure"] is False
