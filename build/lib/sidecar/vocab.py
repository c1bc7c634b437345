"""The words of the policy contract and the lock table, one ``Literal`` type each.

A kind, a scope, a state or an outcome is one of these types from the moment it
enters Statelock: a request body, a query string, a config file or a table row is
checked once, where it comes in (``one_of(LOCK_KINDS, value, "lock.kind")``), and
the code behind that edge never checks it again. The check raises ``BadRequest``
naming the field and the values it may take.
"""

from __future__ import annotations

from typing import Literal, TypeVar, get_args

from sidecar.errors import BadRequest

ActionKind = Literal["read", "state_change", "create", "delete", "lock", "unlock", "unknown"]
"""What a classified request does; ``unknown`` never reaches the policy."""

LockKind = Literal["state", "boot", "delete"]
"""What a lock blocks (the bundle's ``data.statelock.lock_kinds`` gives each its meaning)."""

LockScope = Literal["instance", "project", "host"]
"""What a lock's ``target`` names."""

LockState = Literal["pending", "active", "failed", "lifted"]
"""A lock row's state: a suspend-lock is ``pending`` until its suspend is done (``failed``
if it could not be done; the lock applies all the same); ``lifted`` is history."""

LockSource = Literal["nova", "api", "suspend-lock"]
"""How a lock was placed: Nova's ``lock`` action, the lock API, or a suspend-lock."""

LockListState = Literal["active", "expired", "lifted", "all"]
"""Which locks a listing asks for: in force, expired (never lifted), lifted, or every one."""

Outcome = Literal["allow", "deny", "error"]
"""A decision record's outcome; ``error`` is a request that failed closed or was refused."""

ACTION_KINDS: tuple[ActionKind, ...] = get_args(ActionKind)
STATE_CHANGING_KINDS: frozenset[ActionKind] = frozenset(
    {"state_change", "create", "delete", "lock", "unlock"})
LOCK_KINDS: tuple[LockKind, ...] = get_args(LockKind)
LOCK_SCOPES: tuple[LockScope, ...] = get_args(LockScope)
LOCK_STATES: tuple[LockState, ...] = get_args(LockState)
LOCK_SOURCES: tuple[LockSource, ...] = get_args(LockSource)
LOCK_LIST_STATES: tuple[LockListState, ...] = get_args(LockListState)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)

_T = TypeVar("_T", bound=str)


def one_of(choices: tuple[_T, ...], value: object, key: str) -> _T:
    """``value`` as one of ``choices`` (typed as they are); BadRequest naming ``key`` otherwise.

    ``one_of(LOCK_KINDS, body.get("kind"), "lock.kind")`` is a ``LockKind``.
    """
    for choice in choices:
        if value == choice:
            return choice
    raise BadRequest(f"{key} must be one of {', '.join(choices)} (got {value!r})")
