"""The error tree of Statelock.

Every error the service raises on purpose is a ``SidecarError``; its ``code`` is a
snake_case word used in decision records and metric labels, and ``status`` is the
HTTP status the request path answers with. Library errors are translated into
these where they enter our code.
"""

from __future__ import annotations

from typing import Self


class SidecarError(Exception):
    """Base of every deliberate Statelock error.

    The error boundary (``sidecar.handlers.boundary``) is the one place that turns it
    into a Nova-shaped fault. What the fault carries besides ``status`` and ``message``
    travels on the error: ``headers`` (e.g. the WWW-Authenticate challenge of a 401),
    the ``decision_id`` of the record that holds the refusal, the ``microversion`` to
    echo, and ``close_connection`` for a request that must not be followed on its
    connection. ``bind`` sets the last three where the request's context is known.
    """

    code = "sidecar_error"
    status = 500
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.decision_id: str | None = None
        self.microversion: tuple[int, int] | None = None
        self.close_connection = False

    def bind(self, decision_id: str | None, microversion: tuple[int, int] | None) -> Self:
        """Attach the request's decision id and microversion (the first binding wins)."""
        if self.decision_id is None:
            self.decision_id = decision_id
        if self.microversion is None:
            self.microversion = microversion
        return self


class ConfigError(SidecarError):
    """The configuration is invalid; the message names the key and the fix."""

    code = "config_error"


class StartupError(SidecarError):
    """The machine is not ready for the configuration (a port, a directory, a certificate)."""

    code = "startup_error"


class BadRequest(SidecarError):
    """The request is malformed or ambiguous; it is refused and never forwarded."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LimitExceeded(BadRequest):
    """A request is over one of the ``limits.*``; ``code`` names the limit in metrics.

    ``headers`` (e.g. Retry-After) and ``close_connection`` go into the answer.
    """

    def __init__(self, message: str, code: str, status: int = 400,
                 headers: tuple[tuple[str, str], ...] = (), close_connection: bool = False) -> None:
        super().__init__(message, status)
        self.code = code
        self.headers = headers
        self.close_connection = close_connection


class Unauthorized(SidecarError):
    """The caller's identity could not be established."""

    code = "unauthorized"
    status = 401


class IdentityUnavailable(SidecarError):
    """The identity service could not be asked (down, slow, refusing our credentials): 503.

    ``forward_reads`` says whether a read may be forwarded unidentified anyway
    (``identity.keystone.reads_when_keystone_down: forward``).
    """

    code = "identity_unavailable"
    status = 503

    def __init__(self, message: str, forward_reads: bool = False) -> None:
        super().__init__(message)
        self.forward_reads = forward_reads


class Forbidden(SidecarError):
    """The caller is identified but lacks the role the operation needs (403)."""

    code = "forbidden"
    status = 403


class Denied(SidecarError):
    """The policy said no: ``status`` is 409 (a lock) or 403 (a role problem).

    ``lock_ids`` names the locks that decided it.
    """

    code = "policy_denied"

    def __init__(self, message: str, status: int, lock_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.lock_ids = lock_ids


class Conflict(SidecarError):
    """The request conflicts with a change made meanwhile; retrying may succeed (409)."""

    code = "conflict"
    status = 409


class NotFound(SidecarError):
    """The instance or lock does not exist (or is not visible to the caller)."""

    code = "not_found"
    status = 404


class PolicyError(SidecarError):
    """The policy engine failed or returned no usable decision: deny with 503."""

    code = "policy_error"
    status = 503


class LockStoreError(SidecarError):
    """The lock store can't be read or written: state changes are denied with 503."""

    code = "lock_store_error"
    status = 503


class AuditError(SidecarError):
    """A decision record could not be made durable."""

    code = "audit_error"
    status = 503


class TargetUnresolved(SidecarError):
    """The instance's project or host is needed but could not be learned."""

    code = "target_unresolved"
    status = 503


class UpstreamError(SidecarError):
    """The upstream compute API could not be reached or failed (502)."""

    code = "upstream_error"
    status = 502


class UpstreamTimeout(UpstreamError):
    """The upstream compute API did not answer in time (504)."""

    code = "upstream_timeout"
    status = 504


class BackendError(SidecarError):
    """A hypervisor driver call failed; ``status`` follows the driver's error."""

    code = "backend_error"
    status = 502

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
