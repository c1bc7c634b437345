"""The OPA engine: decisions from a real OPA server through opa-python-client.

One ``AsyncOpaClient`` (one keep-alive session) for the life of the app, no
retries on the request path, a hard timeout of ``policy.timeout_ms``. Down, slow,
an HTTP error or a missing ``result`` all raise ``PolicyError``: state changes are
denied with 503. OPA's ``decision_id`` and the bundle revision it reports in
``provenance`` go into the Decision and from there into our record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client.opa_async import AsyncOpaClient

from sidecar.config import PolicyConfig
from sidecar.errors import ConfigError, PolicyError
from sidecar.policy.decision import Decision, decision_from_result


class OpaEngine:
    """A PolicyEngine asking an OPA server (see module docstring)."""

    name = "opa"

    def __init__(self, cfg: PolicyConfig) -> None:
        assert cfg.opa_url is not None
        parts = urlsplit(cfg.opa_url)
        if not parts.hostname:
            raise ConfigError(f"policy.opa_url: {cfg.opa_url!r} has no host")
        self._timeout = cfg.timeout_ms / 1000.0
        self._client = AsyncOpaClient(
            host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https", retries=0, timeout=self._timeout)
        package, _, rule = cfg.decision_path.rpartition("/")
        self._package, self._rule = package, rule
        self._revision = ""
        self.last_error: str | None = None

    @property
    def revision(self) -> str:
        return self._revision

    async def start(self) -> None:
        await self._client._init_session()
        try:
            await asyncio.wait_for(self._client.check_health(), self._timeout * 4)
        except Exception as exc:  # NOTE: OPA may start after us; decisions fail closed until then
            self.last_error = f"OPA not reachable at start: {exc}"

    async def close(self) -> None:
        await self._client.close_connection()

    async def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        try:
            doc = await asyncio.wait_for(
                self._client.query_rule(dict(input_doc), self._package, self._rule,
                                        {"provenance": True}),
                self._timeout)
        except TimeoutError as exc:
            self.last_error = "OPA did not answer in time"
            raise PolicyError(f"OPA did not answer within {self._timeout * 1000:.0f} ms") from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self.last_error = f"OPA request failed: {exc}"
            raise PolicyError(f"OPA request failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(doc, Mapping):
            raise PolicyError("OPA answered with something other than an object")
        revision = _revision_of(doc.get("provenance"))
        if revision:
            self._revision = revision
        self.last_error = None
        return decision_from_result(doc.get("result"), revision or self._revision,
                                    engine_decision_id=doc.get("decision_id"))

    def health(self) -> dict[str, Any]:
        return {"engine": self.name, "ok": self.last_error is None, "revision": self._revision,
                "last_error": self.last_error}


def _revision_of(provenance: Any) -> str:
    if not isinstance(provenance, Mapping):
        return ""
    bundles = provenance.get("bundles")
    if isinstance(bundles, Mapping):
        revisions = sorted(str(b.get("revision", "")) for b in bundles.values()
                           if isinstance(b, Mapping))
        return ",".join(r for r in revisions if r)
    return str(provenance.get("revision", ""))
