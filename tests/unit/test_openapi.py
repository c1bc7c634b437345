"""The OpenAPI document validates, and covers exactly the API routes the application registers."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from sidecar.app import create_app
from sidecar.config import config_from_mapping
from sidecar.handlers.openapi import OPENAPI

_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}


def _api_routes() -> set[tuple[str, str]]:
    app = create_app(config_from_mapping({"backend": {"kind": "upstream",
                                                      "upstream_url": "http://127.0.0.1:9"}}, env={}))
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in _METHODS and (path.startswith("/statelock/v1/") or path == "/metrics"):
            out.add((route.method.lower(), path))
    return out


def _documented() -> set[tuple[str, str]]:
    return {(method, path) for path, item in OPENAPI["paths"].items() for method in item
            if method.upper() in _METHODS}


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(OPENAPI)


def test_every_api_route_is_documented_and_nothing_else() -> None:
    assert _api_routes() == _documented()


@pytest.mark.parametrize(("method", "path"), sorted(_documented()))
def test_every_operation_declares_only_errors_it_can_answer(method: str, path: str) -> None:
    responses = OPENAPI["paths"][path][method]["responses"]
    if method == "get":
        assert "409" not in responses, f"{method} {path} can't conflict with a lock"
    assert all(re.fullmatch(r"[1-5]\d\d", code) for code in responses)
