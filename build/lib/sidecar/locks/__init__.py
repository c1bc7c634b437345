"""Locks: the model, the store protocol, and the SQLite and PostgreSQL stores.

``model`` (Lock, LockFilter) -> ``store`` (the LockStore protocol) -> ``factory``
(``open_lock_store`` by URL). ``sql`` is the SQL both stores share; ``sqlite`` is
one store; ``postgres`` is the other, over ``pg_session``, ``pg_schema``,
``pg_guard``, ``pg_cache`` and ``pg_listener``; ``pg_copy`` and ``migrate`` are
``statelock locks migrate``. Nothing is re-exported here, so importing the model
loads no store.
"""
