"""The Backend protocol the request path forwards through."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TargetInfo:
    """What the policy needs to know about an instance beyond its id."""

    instance_id: str
    project_id: str | None
    host: str | None


@dataclass(frozen=True)
class ForwardRequest:
    """One request to send on: the classified bytes, never re-encoded."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    client_ip: str
    scheme: str
    host: str


@dataclass
class ForwardResponse:
    """The backend's answer; ``chunks`` streams the body, ``release`` frees the connection."""

    status: int
    headers: list[tuple[str, str]]
    chunks: AsyncIterator[bytes]
    release: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    length: int | None = None


class Backend(Protocol):
    """Forwards allowed requests and answers questions about instances.

    ``forward`` raises UpstreamError / UpstreamTimeout (or BackendError for
    drivers); ``resolve`` raises NotFound for an instance that does not exist
    and TargetUnresolved when it can't tell.
    """

    async def start(self) -> None:
        """Open sessions or connections."""

    async def close(self) -> None:
        """Close them."""

    async def forward(self, request: ForwardRequest) -> ForwardResponse:
        """Send one request and return once the response headers are in."""

    async def resolve(self, instance_id: str) -> TargetInfo:
        """The instance's project and host, as Statelock's service identity sees them."""

    async def status(self, instance_id: str) -> str:
        """The instance's Nova status now (ACTIVE, SUSPENDED, SHUTOFF, ...), never cached."""

    async def power(self, instance_id: str, operation: str) -> None:
        """Run ``suspend`` or ``resume`` as Statelock's service identity."""

    async def set_boot_block(self, instance_id: str, blocked: bool, reason: str | None) -> None:
        """Ask the hypervisor to refuse boots too, where it can (defence in depth)."""

    def forget_host(self, instance_id: str) -> None:
        """Drop any cached host of the instance (it may have moved)."""


async def drain(response: ForwardResponse) -> bytes:
    """Read a whole backend response body and free its connection."""
    parts = [chunk async for chunk in response.chunks]
    if response.release is not None:
        res = response.release()
        if inspect.isawaitable(res):
            await res
    return b"".join(parts)
