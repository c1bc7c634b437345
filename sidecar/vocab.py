"""The words of the policy contract and the lock table, one ``Literal`` type each.

A kind, a scope, a state or an outcome is one of these types from the moment it
enters Statelock: a request body, a query string, a config file or a table row is
checked once, where it comes in (``lock_kind``, ``lock_scope``, ...), and the code
behind that edge never checks it again. The checks raise ``BadRequest`` naming the
field and the values it may take.
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


def _one_of(choices: tuple[_T, ...], value: object, key: str) -> _T:
    for choice in choices:
        if value == choice:
            return choice
    raise BadRequest(f"{key} must be one of {', '.join(choices)} (got {value!r})")


def lock_kind(value: object, key: str = "kind") -> LockKind:
    """``value`` as a LockKind; BadRequest naming ``key`` otherwise."""
    return _one_of(LOCK_KINDS, value, key)


def lock_scope(value: object, key: str = "scope") -> LockScope:
    """``value`` as a LockScope; BadRequest naming ``key`` otherwise."""
    return _one_of(LOCK_SCOPES, value, key)


def lock_state(value: object, key: str = "state") -> LockState:
    """``value`` as a LockState; BadRequest naming ``key`` otherwise."""
    return _one_of(LOCK_STATES, value, key)


def lock_source(value: object, key: str = "source") -> LockSource:
    """``value`` as a LockSource; BadRequest naming ``key`` otherwise."""
    return _one_of(LOCK_SOURCES, value, key)


def lock_list_state(value: object, key: str = "state") -> LockListState:
    """``value`` as a LockListState; BadRequest naming ``key`` otherwise."""
    return _one_of(LOCK_LIST_STATES, value, key)


def action_kind(value: object, key: str = "kind") -> ActionKind:
    """``value`` as an ActionKind; BadRequest naming ``key`` otherwise."""
    return _one_of(ACTION_KINDS, value, key)


def outcome(value: object, key: str = "outcome") -> Outcome:
    """``value`` as an Outcome; BadRequest naming ``key`` otherwise."""
    return _one_of(OUTCOMES, value, key)
