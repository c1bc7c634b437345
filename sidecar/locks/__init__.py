"""Locks: the model, the store protocol and its SQLite implementation."""

from sidecar.locks.model import LOCK_KINDS, LOCK_SCOPES, Lock, LockFilter, new_lock_id
from sidecar.locks.store import LockStore, open_lock_store

__all__ = [
    "LOCK_KINDS",
    "LOCK_SCOPES",
    "Lock",
    "LockFilter",
    "LockStore",
    "new_lock_id",
    "open_lock_store",
]
