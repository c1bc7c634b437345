"""XML-RPC transports for XAPI with a per-connection timeout, and URL redaction for messages.

``xmlrpc.client`` waits forever by default, so one hung XAPI call would hold a
worker thread (and the session lock) for good.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
import xmlrpc.client
from typing import Any


def redacted(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


class TimeoutTransport(xmlrpc.client.Transport):
    """Plain-HTTP transport whose connections time out, so a hung XAPI can't hang us."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


class TimeoutSafeTransport(xmlrpc.client.SafeTransport):
    """HTTPS transport whose connections time out."""

    def __init__(self, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPSConnection:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn
