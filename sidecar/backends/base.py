"""The two protocols a backend implements: dispatching decided requests, and instance operations.

A backend is where allowed requests go. It has two faces, injected into the
request path separately:

* ``Dispatcher`` executes one request that was classified (and, for a state change,
  decided): the upstream forwarder sends the exact bytes that were classified; the
  driver dispatcher executes the ``Action`` itself (its name, instance and params),
  never re-reading the request. What was decided is what is executed.
* ``InstanceOps`` answers what the policy and the lock operations need to know of an
  instance, and acts on it as Statelock's own service identity (suspend-lock).

``Backend`` bundles both with their lifetime (``start``/``close``, in cleanup_ctx).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sidecar.classify import Action
from sidecar.identity import Subject
from sidecar.policy.input import Target


@dataclass(frozen=True)
class IncomingRequest:
    """The parts of one HTTP request, as received: what is classified is what is dispatched.

    A forwarder sends ``body`` as it came, to the classified ``Action.forward_path``.
    """

    method: str
    raw_path: str
    headers: Mapping[str, str]
    body: bytes
    client_ip: str = ""
    scheme: str = "http"
    host: str = ""


@dataclass
class ForwardResponse:
    """The backend's answer; ``chunks`` streams the body, ``release`` frees the connection."""

    status: int
    headers: list[tuple[str, str]]
    chunks: AsyncIterator[bytes]
    release: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    length: int | None = None


class Dispatcher(Protocol):
    """Executes a classified request and returns the response to stream back.

    ``dispatch`` raises a SidecarError for what it refuses or can't do (UpstreamError /
    UpstreamTimeout for a forwarder, NotFound or BackendError for a driver); the
    error boundary answers it. ``needs_subject`` says whether the request path must
    identify the caller even for a read (a driver shows each caller only its own
    project's instances; an upstream decides that itself).
    """

    needs_subject: bool

    async def dispatch(self, request: IncomingRequest, action: Action,
                       subject: Subject | None) -> ForwardResponse:
        """Execute ``action`` (classified from ``request``) for ``subject``."""


class InstanceOps(Protocol):
    """What Statelock asks and does about one instance, as its own service identity.

    ``resolve`` raises NotFound for an instance that does not exist and
    TargetUnresolved when it can't tell; the others raise the backend's SidecarError.
    ``resolves_cheaply`` says whether ``resolve`` costs next to nothing (a driver asks its
    hypervisor), so every decision may carry the instance's project and host; an
    upstream's lookup costs a round trip, so it is made only when a decision needs it.
    """

    resolves_cheaply: bool

    async def resolve(self, instance_id: str) -> Target:
        """The instance's project and host."""

    async def status(self, instance_id: str) -> str:
        """The instance's Nova status now (ACTIVE, SUSPENDED, SHUTOFF, ...), never cached."""

    async def power(self, instance_id: str, operation: str) -> int:
        """Run ``suspend`` or ``resume``; the backend's status for it (Nova's 202, a driver's 202)."""

    async def set_boot_block(self, instance_id: str, blocked: bool, reason: str | None,
                             lock_id: str | None = None) -> dict[str, Any] | None:
        """Ask the hypervisor to refuse boots too, where it can (defence in depth).

        A driver backend raises its error (the hypervisor is the backend). An upstream
        returns a report of the write on the instance's compute host (``error`` set when
        the host could not be reached), None when no hypervisor is configured.
        """

    def forget_host(self, instance_id: str) -> None:
        """Drop any cached host of the instance (it may have moved)."""

    async def knows(self, scope: str, target: str) -> str | None:
        """Whether a project or host lock's target exists: None if it does, else why not.

        A lock on a target that does not exist does nothing, so the lock API refuses it
        unless forced. TargetUnresolved when the backend can't tell.
        """


class Backend(Protocol):
    """A dispatcher and instance operations sharing one connection's lifetime."""

    @property
    def dispatcher(self) -> Dispatcher:
        """Where decided requests go."""

    @property
    def ops(self) -> InstanceOps:
        """Statelock's own questions and actions about instances."""

    async def start(self) -> None:
        """Open sessions or connections; raises a SidecarError when the backend can't serve."""

    async def close(self) -> None:
        """Close them."""


async def drain(response: ForwardResponse) -> bytes:
    """Read a whole backend response body and free its connection."""
    parts = [chunk async for chunk in response.chunks]
    if response.release is not None:
        res = response.release()
        if inspect.isawaitable(res):
            await res
    return b"".join(parts)
