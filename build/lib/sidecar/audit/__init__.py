"""Audit: decision records, the hash-chained log, verification."""

from sidecar.audit.log import AuditLog, JsonlAuditLog
from sidecar.audit.record import new_decision_id

__all__ = ["AuditLog", "JsonlAuditLog", "new_decision_id"]
