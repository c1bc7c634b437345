"""The OPA engine: decisions from a real OPA server through opa-python-client.

One ``AsyncOpaClient`` (one keep-alive session) for the life of the app, no
retries on the request path, a hard timeout of ``policy.timeout_ms``. Down, slow,
an HTTP error or a missing ``result`` all raise ``PolicyError``: state changes are
denied with 503. OPA's ``decision_id`` and the bundle revision it reports in
``provenance`` go into the Decision and from there into our record. A background
probe keeps ``health`` true to OPA's state when no decisions flow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client.opa_async import AsyncOpaClient

from sidecar.aio import cancel_and_wait
from sidecar.config import PolicyConfig
from sidecar.errors import ConfigError, PolicyError
from sidecar.policy.decision import Decision, decision_from_result

log = logging.getLogger(__name__)


def _client_for(url: str, timeout_s: float) -> AsyncOpaClient:
    """An AsyncOpaClient for ``url`` with no retries; raises ConfigError for an unusable URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"policy.opa_url: {url!r} is not an http(s)://host[:port] URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ConfigError(f"policy.opa_url: {url!r} must not have a path; OPA serves /v1/data at its root")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigError(f"policy.opa_url: {url!r}: {exc}") from exc
    # NOTE: retries=0: a retry would double the wait of a request already past its budget.
    return AsyncOpaClient(host=parts.hostname, port=port, ssl=parts.scheme == "https",
                          retries=0, timeout=timeout_s)


class OpaEngine:
    """A PolicyEngine asking an OPA server (see module docstring)."""

    name = "opa"

    def __init__(self, cfg: PolicyConfig, probe_interval_s: float = 5.0) -> None:
        if not cfg.opa_url:
            raise ConfigError("policy.opa_url is required when policy.engine is 'opa'")
        self._url = cfg.opa_url
        self._timeout = cfg.timeout_ms / 1000.0
        self._client = _client_for(cfg.opa_url, self._timeout)
        package, _, rule = cfg.decision_path.strip("/").rpartition("/")
        self._package, self._rule = package, rule
        self._revision = ""
        self._started = False
        self._probe_interval = probe_interval_s
        self._prober: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self.failures = 0

    @property
    def revision(self) -> str:
        return self._revision

    async def start(self) -> None:
        """Open the keep-alive session, probe OPA, and keep probing it in the background.

        An absent OPA is not fatal: OPA may come up after Statelock. Until it answers,
        decisions fail closed and ``health`` says why; the probe (``GET /health``, not a
        decision) notices when it is back, so readiness recovers without traffic.
        """
        await self._client._init_session()
        self._started = True
        await self.probe()
        self._prober = asyncio.create_task(self._probe_loop(), name="statelock-opa-probe")

    async def probe(self) -> bool:
        """Check OPA now; True when it is healthy and answers the decision path."""
        try:
            healthy = await asyncio.wait_for(self._client.check_health({"bundles": True}),
                                             max(self._timeout * 4, 1.0))
        except TimeoutError:
            healthy = False
        if not healthy:
            self._fail(f"OPA at {self._url} is not healthy (GET /health?bundles)")
            return False
        if self.last_error is None and self._revision:
            return True
        try:
            await self.decide({})  # NOTE: learns the revision and checks the decision path exists
        except PolicyError:
            return False
        return True

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval if self.last_error is None else
                                min(self._probe_interval, 1.0))
            try:
                await self.probe()
            except Exception as exc:  # NOTE: the prober must outlive any one bad probe
                log.error("policy engine opa: probe failed: %s", exc)

    async def close(self) -> None:
        await cancel_and_wait(self._prober)
        self._prober = None
        if self._started:
            await self._client.close_connection()
            self._started = False

    def _fail(self, message: str) -> PolicyError:
        if self.last_error is None:
            log.warning("policy engine opa at %s is failing; state changes are denied: %s",
                        self._url, message)
        self.last_error = message
        self.failures += 1
        return PolicyError(message)

    def _ok(self) -> None:
        if self.last_error is not None:
            log.info("policy engine opa at %s answers again (revision %s)", self._url, self._revision)
        self.last_error = None
        self.last_ok = time.time()

    async def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        """Ask OPA; raises PolicyError when OPA is down, slow, failing, or has no result."""
        try:
            doc = await asyncio.wait_for(
                self._client.query_rule(dict(input_doc), self._package, self._rule,
                                        {"provenance": "true"}),
                self._timeout)
        except TimeoutError as exc:
            raise self._fail(f"OPA did not answer within {self._timeout * 1000:.0f} ms") from exc
        except aiohttp.ClientResponseError as exc:
            raise self._fail(f"OPA answered {exc.status}: {exc.message}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._fail(f"OPA request failed: {type(exc).__name__}: {exc}") from exc
        except (ValueError, TypeError) as exc:  # NOTE: a body that is not JSON, or input that can't be
            raise self._fail(f"OPA exchange failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(doc, Mapping):
            raise self._fail("OPA answered with something other than a JSON object")
        revision = _revision_of(doc.get("provenance"))
        if revision:
            self._revision = revision
        decision_id = doc.get("decision_id")
        if "result" not in doc:
            raise self._fail(f"OPA has no {self._package}/{self._rule} for this input (undefined)")
        try:
            decision = decision_from_result(doc["result"], revision or self._revision,
                                            engine_decision_id=decision_id if isinstance(decision_id, str)
                                            else None)
        except PolicyError as exc:
            raise self._fail(exc.message) from exc
        self._ok()
        return decision

    async def query(self, query: str, input_doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Evaluate an ad-hoc query (``POST /v1/query``); returns its bindings.

        For tools (``statelock policy eval --explain``), not the request path; raises PolicyError.
        """
        try:
            doc = await asyncio.wait_for(self._client.ad_hoc_query(query, dict(input_doc)), self._timeout)
        except TimeoutError as exc:
            raise PolicyError(f"OPA did not answer within {self._timeout * 1000:.0f} ms") from exc
        except aiohttp.ClientResponseError as exc:
            raise PolicyError(f"OPA answered {exc.status}: {exc.message}") from exc
        except (aiohttp.ClientError, OSError, ValueError, TypeError) as exc:
            raise PolicyError(f"OPA request failed: {type(exc).__name__}: {exc}") from exc
        result = doc.get("result") if isinstance(doc, Mapping) else None
        return [dict(b) for b in result if isinstance(b, Mapping)] if isinstance(result, list) else []

    def health(self) -> dict[str, Any]:
        return {"engine": self.name, "ok": self.last_error is None, "url": self._url,
                "revision": self._revision, "last_error": self.last_error,
                "last_ok": None if self.last_ok is None else datetime.fromtimestamp(self.last_ok, UTC)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"), "failures": self.failures}


def _revision_of(provenance: Any) -> str:
    """The bundle revisions OPA reports in ``provenance`` (several joined by commas)."""
    if not isinstance(provenance, Mapping):
        return ""
    bundles = provenance.get("bundles")
    if isinstance(bundles, Mapping):
        revisions = sorted(str(b.get("revision", "")) for b in bundles.values()
                           if isinstance(b, Mapping))
        return ",".join(r for r in revisions if r)
    return str(provenance.get("revision", ""))

