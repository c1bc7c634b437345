"""A test upstream that reads requests the way Nova's API stack does.

Built from the libraries Nova's API stack is built from, configured as Nova
configures them (nova-api.md section 4; nova/api/openstack/__init__.py,
compute/routes.py, wsgi.py, urlmap.py at 00a0304):

* Paste's ``URLMap``, subclassed as Nova does, mounts the versions app at ``/``,
  ``/v2`` and ``/v2.1``, the API at ``/v2.1/+`` and the legacy-v2 API at ``/v2/+``; it
  collapses ``//`` before matching and, for a path naming no version, takes the
  version from a Content-Type or Accept ``version=`` option.
* ``routes.Mapper`` set up as Nova's ``ProjectMapper``: every route exists twice,
  plain and under ``/{project_id:[0-9a-f-]+}``, each with a method condition, and is
  matched through ``routes.middleware.RoutesMiddleware`` with its default settings,
  which include the ``?_method=`` override.
* A Resource step that reads the request as ``nova.api.openstack.wsgi.Resource``
  does: microversion headers via ``microversion_parse`` (406/400), the content type
  (absent, empty or ``text/plain`` is JSON; other types are 415), the action key of
  ``/action`` bodies (Python ``json``, exactly one key, last duplicate wins), the body
  only for POST and PUT, and the controller call failing (400) when the method's
  ``body`` argument and the request's method disagree.
* ``serve()`` runs it on loopback under ``wsgiref`` (PATH_INFO percent-decoded as
  latin-1, repeated headers joined with ``,``: what uWSGI and gunicorn do too).

Every controller call it would make is appended to ``executions`` as an
``Execution``: what Nova would actually run. Nothing here checks Nova's own lock
or policy: Statelock's lock is what is under test. A server is found when its id
is UUID-like and names a known server in any spelling (a superset of a MySQL
case-insensitive lookup).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socketserver
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import microversion_parse
import routes  # type: ignore[import-untyped]
import routes.middleware  # type: ignore[import-untyped]
import webob
from paste.urlmap import URLMap  # type: ignore[import-untyped]

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 104)
MAX_BODY = 114688  # oslo.middleware sizelimit, as Nova deploys it
MARKER = "X-Nova-Wsgi"  # on every answer, so a test can tell it from Statelock's own
_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")
_JSON_TYPES = ("application/json", "application/vnd.openstack.compute+json")

Handlers = dict[str, tuple[str, str]]


def _collection(path: str, controller: str) -> tuple[tuple[str, Handlers], ...]:
    """A collection's four routes: list and create, detail, show/update/delete, and its action."""
    return (
        (path, {"GET": (controller, "index"), "POST": (controller, "create")}),
        (f"{path}/detail", {"GET": (controller, "detail")}),
        (f"{path}/{{id}}", {"GET": (controller, "show"), "PUT": (controller, "update"),
                             "DELETE": (controller, "delete")}),
        (f"{path}/{{id}}/action", {"POST": (controller, "action")}),
    )


# (path, {method: (controller, controller method)}) in Nova's ROUTE_LIST order.
ROUTES: tuple[tuple[str, Handlers], ...] = (
    ("/", {"GET": ("versions", "show")}),
    ("/versions/{id}", {"GET": ("versions", "show")}),
    ("/extensions", {"GET": ("extensions", "index")}),
    *_collection("/flavors", "flavors"),
    ("/images", {"GET": ("images", "index")}),
    ("/images/{id}", {"GET": ("images", "show"), "DELETE": ("images", "delete")}),
    ("/limits", {"GET": ("limits", "index")}),
    ("/os-aggregates/{id}/action", {"POST": ("aggregates", "action")}),
    ("/os-hosts", {"GET": ("hosts", "index")}),
    ("/os-hosts/{id}", {"GET": ("hosts", "show"), "PUT": ("hosts", "update")}),
    ("/os-hosts/{id}/reboot", {"GET": ("hosts", "reboot")}),
    ("/os-hosts/{id}/shutdown", {"GET": ("hosts", "shutdown")}),
    ("/os-hosts/{id}/startup", {"GET": ("hosts", "startup")}),
    ("/os-keypairs", {"GET": ("keypairs", "index"), "POST": ("keypairs", "create")}),
    ("/os-keypairs/{id}", {"GET": ("keypairs", "show"), "DELETE": ("keypairs", "delete")}),
    ("/os-migrations", {"GET": ("migrations", "index")}),
    ("/os-server-external-events", {"POST": ("server_external_events", "create")}),
    ("/os-server-groups", {"GET": ("server_groups", "index"), "POST": ("server_groups", "create")}),
    *_collection("/os-volumes_boot", "servers"),
    *_collection("/servers", "servers"),
    ("/servers/{server_id}/consoles", {"GET": ("consoles", "index"), "POST": ("consoles", "create")}),
    ("/servers/{server_id}/consoles/{id}", {"GET": ("consoles", "show"),
                                            "DELETE": ("consoles", "delete")}),
    ("/servers/{server_id}/diagnostics", {"GET": ("server_diagnostics", "index")}),
    ("/servers/{server_id}/ips", {"GET": ("ips", "index")}),
    ("/servers/{server_id}/ips/{id}", {"GET": ("ips", "show")}),
    ("/servers/{server_id}/metadata", {"GET": ("server_metadata", "index"),
                                       "POST": ("server_metadata", "create"),
                                       "PUT": ("server_metadata", "update_all")}),
    ("/servers/{server_id}/metadata/{id}", {"GET": ("server_metadata", "show"),
                                            "PUT": ("server_metadata", "update"),
                                            "DELETE": ("server_metadata", "delete")}),
    ("/servers/{server_id}/migrations", {"GET": ("server_migrations", "index")}),
    ("/servers/{server_id}/migrations/{id}", {"GET": ("server_migrations", "show"),
                                              "DELETE": ("server_migrations", "delete")}),
    ("/servers/{server_id}/migrations/{id}/action", {"POST": ("server_migrations", "action")}),
    ("/servers/{server_id}/os-instance-actions", {"GET": ("instance_actions", "index")}),
    ("/servers/{server_id}/os-instance-actions/{id}", {"GET": ("instance_actions", "show")}),
    ("/servers/{server_id}/os-interface", {"GET": ("server_os_interface", "index"),
                                           "POST": ("server_os_interface", "create")}),
    ("/servers/{server_id}/os-interface/{id}", {"GET": ("server_os_interface", "show"),
                                                "DELETE": ("server_os_interface", "delete")}),
    ("/servers/{server_id}/os-server-password", {"GET": ("server_password", "index"),
                                                 "DELETE": ("server_password", "clear")}),
    ("/servers/{server_id}/os-virtual-interfaces", {"GET": ("virtual_interfaces", "index")}),
    ("/servers/{server_id}/os-volume_attachments", {"GET": ("server_volume_attachments", "index"),
                                                    "POST": ("server_volume_attachments", "create")}),
    ("/servers/{server_id}/os-volume_attachments/{id}", {
        "GET": ("server_volume_attachments", "show"),
        "PUT": ("server_volume_attachments", "update"),
        "DELETE": ("server_volume_attachments", "delete")}),
    ("/servers/{server_id}/remote-consoles", {"POST": ("server_remote_consoles", "create")}),
    ("/servers/{server_id}/os-security-groups", {"GET": ("server_security_groups", "index")}),
    ("/servers/{server_id}/shares", {"GET": ("server_shares", "index"),
                                     "POST": ("server_shares", "create")}),
    ("/servers/{server_id}/shares/{id}", {"GET": ("server_shares", "show"),
                                          "DELETE": ("server_shares", "delete")}),
    ("/servers/{server_id}/tags", {"GET": ("server_tags", "index"), "PUT": ("server_tags", "update_all"),
                                   "DELETE": ("server_tags", "delete_all")}),
    ("/servers/{server_id}/tags/{id}", {"GET": ("server_tags", "show"), "PUT": ("server_tags", "update"),
                                        "DELETE": ("server_tags", "delete")}),
    ("/servers/{server_id}/topology", {"GET": ("server_topology", "index")}),
)

# Microversion range of a controller method (or "removed": 410), where it has one.
ROUTE_VERSIONS: dict[tuple[str, str], tuple[tuple[int, int], tuple[int, int]] | str] = {
    ("server_tags", "*"): ((2, 26), MAX_VERSION),
    ("server_migrations", "index"): ((2, 23), MAX_VERSION),
    ("server_migrations", "show"): ((2, 23), MAX_VERSION),
    ("server_migrations", "delete"): ((2, 24), MAX_VERSION),
    ("server_shares", "*"): ((2, 97), MAX_VERSION),
    ("server_remote_consoles", "*"): ((2, 6), MAX_VERSION),
    ("server_topology", "*"): ((2, 78), MAX_VERSION),
    ("virtual_interfaces", "*"): (MIN_VERSION, (2, 43)),
    ("hosts", "*"): (MIN_VERSION, (2, 42)),
    ("consoles", "*"): "removed",
}

# Action keys of POST /servers/{id}/action (nova-api.md section 2): version range or "removed".
SERVER_ACTIONS: dict[str, tuple[tuple[int, int], tuple[int, int]] | str] = {
    **{key: (MIN_VERSION, MAX_VERSION) for key in (
        "reboot", "os-start", "os-stop", "resize", "confirmResize", "revertResize", "rebuild",
        "createImage", "lock", "unlock", "pause", "unpause", "suspend", "resume", "shelve",
        "shelveOffload", "unshelve", "rescue", "unrescue", "changePassword", "createBackup",
        "forceDelete", "restore", "migrate", "os-migrateLive", "evacuate", "os-resetState",
        "injectNetworkInfo", "os-getConsoleOutput", "addSecurityGroup", "removeSecurityGroup")},
    "trigger_crash_dump": ((2, 17), MAX_VERSION),
    **{key: (MIN_VERSION, (2, 5)) for key in (
        "os-getVNCConsole", "os-getSPICEConsole", "os-getSerialConsole")},
    **{key: (MIN_VERSION, (2, 43)) for key in (
        "addFloatingIp", "removeFloatingIp", "addFixedIp", "removeFixedIp")},
    "resetNetwork": "removed",
    "os-getRDPConsole": "removed",
}
OTHER_ACTIONS: dict[str, dict[str, tuple[tuple[int, int], tuple[int, int]] | str]] = {
    "server_migrations": {"force_complete": ((2, 22), MAX_VERSION)},
    "flavors": {"addTenantAccess": (MIN_VERSION, MAX_VERSION),
                "removeTenantAccess": (MIN_VERSION, MAX_VERSION)},
    "aggregates": {key: (MIN_VERSION, MAX_VERSION) for key in (
        "add_host", "remove_host", "set_metadata")},
}
# What runs without changing any state; everything else Nova executes changes state.
READ_METHODS = frozenset({"index", "show", "detail"})
READ_CALLS = frozenset({"server_remote_consoles.create", "os-getConsoleOutput", "os-getVNCConsole",
                        "os-getSPICEConsole", "os-getSerialConsole"})
_SERVER_KEY = {"servers": "id"}


@dataclass(frozen=True)
class Execution:
    """One controller call Nova would make.

    ``name`` is the action key for ``.../action`` calls, else ``controller.method``;
    ``server_id`` the canonical UUID of the server it acts on (None when the call
    names no server); ``microversion`` the effective version it ran at.
    """

    name: str
    server_id: str | None
    microversion: tuple[int, int]
    method: str
    path: str

    @property
    def changes_state(self) -> bool:
        return self.name not in READ_CALLS and self.name.rpartition(".")[2] not in READ_METHODS


class _Fault(Exception):
    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


def canonical_server_id(text: str) -> str | None:
    """The canonical form of an id Nova would look up (``uuidutils.is_uuid_like``), else None."""
    try:
        value = str(uuid.UUID(text))
    except (ValueError, TypeError):
        return None
    stripped = text.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "").lower()
    return value if value.replace("-", "") == stripped else None


def _version(text: str) -> tuple[int, int]:
    m = _VERSION_RE.match(text)
    if m is None:
        raise _Fault(400, "badRequest", f"API Version String {text} is of invalid format.")
    return int(m.group(1)), int(m.group(2))


def _in_range(spec: tuple[tuple[int, int], tuple[int, int]] | str | None, version: tuple[int, int]) -> None:
    if spec is None:
        return
    if isinstance(spec, str):
        raise _Fault(410, "computeFault", "This resource is no longer available in the Nova API.")
    if not spec[0] <= version <= spec[1]:
        raise _Fault(404, "itemNotFound", "The resource could not be found.")


@dataclass
class NovaWSGI:
    """State and execution log of the upstream; ``app`` is the WSGI application."""

    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    compute_mount: bool = True
    # NOTE: a test hook: seconds to wait before answering a call, by Execution.name.
    stall_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        mapper = _project_mapper()
        api = routes.middleware.RoutesMiddleware(self._resource, mapper)
        urlmap = _NovaURLMap(not_found_app=self._not_found)
        for mount in ("/", "/v2", "/v2.1"):
            urlmap[mount] = self._versions
        urlmap["/v2/+"] = _legacy_v2(api)
        urlmap["/v2.1/+"] = api
        self._urlmap = urlmap

    def add_server(self, project_id: str, host: str = "cmp-1", server_id: str | None = None) -> str:
        sid = server_id or str(uuid.uuid4())
        self.servers[sid] = {"id": sid, "name": f"vm-{sid[:8]}", "tenant_id": project_id,
                             "user_id": "alice", "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": host}
        return sid

    def changes_to(self, server_id: str) -> list[Execution]:
        """The state-changing calls executed on one server, in order."""
        with self._lock:
            return [e for e in self.executions if e.server_id == server_id and e.changes_state]

    def clear(self) -> None:
        with self._lock:
            self.executions.clear()

    # -- WSGI ------------------------------------------------------------------------------

    def app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The whole stack: sizelimit, the optional /compute mount, then the URL map."""
        length = environ.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_BODY:
            return _reply(start_response, 413, {"overLimit": {"code": 413, "message": "too large"}})
        path = environ.get("PATH_INFO", "")
        if self.compute_mount and (path == "/compute" or path.startswith("/compute/")):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/compute"
            environ["PATH_INFO"] = path[len("/compute"):]
        result: Iterable[bytes] = self._urlmap(environ, start_response)
        if environ["REQUEST_METHOD"] == "HEAD":
            # NOTE: wsgiref would send the body of a HEAD answer; Nova's servers do not.
            for _ in result:
                pass
            return []
        return result

    __call__ = app

    def _versions(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return _reply(start_response, 200, {"versions": []})

    def _not_found(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return _reply(start_response, 404, {"itemNotFound": {"code": 404, "message": "Not found"}})

    def _resource(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = webob.Request(environ)
        version: tuple[int, int] = MIN_VERSION
        try:
            version = _requested_version(request)
            status, doc = self._dispatch(request, version)
        except _Fault as fault:
            status, doc = fault.status, {fault.name: {"code": fault.status, "message": fault.message}}
        headers = [] if environ.get("openstack.legacy_v2") else [
            ("OpenStack-API-Version", f"compute {version[0]}.{version[1]}"),
            ("X-OpenStack-Nova-API-Version", f"{version[0]}.{version[1]}")]
        return _reply(start_response, status, doc, headers)

    def _dispatch(self, request: webob.Request, version: tuple[int, int]) -> tuple[int, Any]:
        match = request.environ["wsgiorg.routing_args"][1]
        if not match:
            raise _Fault(404, "itemNotFound", "The resource could not be found.")
        if "Content-Type" in request.headers:
            content_type = request.content_type
            if content_type and content_type != "text/plain" and content_type not in _JSON_TYPES:
                raise _Fault(415, "badMediaType", "Unsupported Content-Type")
        args = {k: v for k, v in match.items() if k not in ("controller", "format")}
        controller, method = args.pop("controller_name"), args.pop("action")
        body = request.body
        name = f"{controller}.{method}"
        spec: tuple[tuple[int, int], tuple[int, int]] | str | None
        if method == "action":
            name = _action_peek(body)
            actions = SERVER_ACTIONS if controller == "servers" else OTHER_ACTIONS.get(controller, {})
            if name not in actions:
                raise _Fault(400, "badRequest", f"There is no such action: {name}")
            spec = actions[name]
        else:
            spec = ROUTE_VERSIONS.get((controller, method), ROUTE_VERSIONS.get((controller, "*")))
        takes_body = args.pop("routed_method") in ("POST", "PUT")
        if request.method in ("POST", "PUT") and request.content_length:
            try:
                json.loads(body.decode("utf-8"))
            except ValueError:
                raise _Fault(400, "badRequest", "Malformed request body") from None
        project = args.pop("project_id", None)
        token_project = request.headers.get("X-Auth-Token", "").split(":")[1:2]
        if project and token_project and project != token_project[0]:
            raise _Fault(400, "badRequest", "Malformed request URL: URL's project_id doesn't match")
        _in_range(spec, version)
        if takes_body != (request.method in ("POST", "PUT")):
            raise _Fault(400, "badRequest", "Bad request")  # the controller call's TypeError
        server_id = None
        key = _SERVER_KEY.get(controller, "server_id")
        if key in args and controller in ("servers", *_SERVER_SUBCONTROLLERS):
            server_id = canonical_server_id(args[key])
            if server_id is None or server_id not in self.servers:
                raise _Fault(404, "itemNotFound", f"Instance {args[key]} could not be found.")
        execution = Execution(name, server_id, version, request.method, request.path)
        with self._lock:
            self.executions.append(execution)
        if name in self.stall_s:
            time.sleep(self.stall_s[name])
        if name == "servers.show" and server_id is not None:
            return 200, {"server": self.servers[server_id]}
        if name in ("servers.index", "servers.detail"):
            return 200, {"servers": list(self.servers.values())}
        return (200 if not execution.changes_state else 202), {}


_SERVER_SUBCONTROLLERS = (
    "consoles", "server_diagnostics", "ips", "server_metadata", "server_migrations",
    "instance_actions", "server_os_interface", "server_password", "virtual_interfaces",
    "server_volume_attachments", "server_remote_consoles", "server_security_groups",
    "server_shares", "server_tags", "server_topology")


_OPTION_RE = re.compile(r';\s*([^\s;=]+|"[^"\\]*(?:\\.[^"\\]*)*")\s*(?:=\s*([^;]+|"[^"\\]*(?:\\.[^"\\]*)*"))?\s*')


def _version_param(header: str) -> str | None:
    """The ``version=`` option of one Content-Type or Accept item, as Nova's urlmap reads it."""
    for match in _OPTION_RE.finditer(";" + header):
        key, value = match.groups()
        if key.strip('"') == "version" and value is not None:
            return value[1:-1] if value[:1] == value[-1:] == '"' else value
    return None


class _NovaURLMap(URLMap):  # type: ignore[misc]
    """Paste's URLMap as Nova subclasses it (nova/api/openstack/urlmap.py).

    A mount ending in ``/+`` needs something after its ``/``; a path naming no
    version is sent to the app that ``/v<version>`` of a Content-Type or Accept
    ``version=`` option names, with PATH_INFO left as it came.
    """

    def _find(self, path: str) -> tuple[WSGIApplication | None, str]:
        for (_domain, url), app in self.applications:
            if url.endswith("/+"):
                if path.startswith(url[:-1]) and len(path) >= len(url):
                    return app, url[:-2]
                continue
            if path == url or path.startswith(url + "/"):
                return app, url
        return None, ""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = self.normalize_url(environ["PATH_INFO"], False)[1]
        app, url = self._find(path)
        if app is None or not url:
            for header in (environ.get("CONTENT_TYPE", ""), *environ.get("HTTP_ACCEPT", "").split(",")):
                version = _version_param(header)
                versioned, versioned_url = self._find("/v" + version) if version else (None, "")
                if versioned is not None:
                    environ["SCRIPT_NAME"] += versioned_url
                    result: Iterable[bytes] = versioned(environ, start_response)
                    return result
        if app is None:
            return self.not_found_application(environ, start_response)  # type: ignore[no-any-return]
        environ["SCRIPT_NAME"] += url
        environ["PATH_INFO"] = path[len(url):]
        result = app(environ, start_response)
        return result


class _APIMapper(routes.Mapper):  # type: ignore[misc]
    """Nova's APIMapper: ``''`` matched as is, ``format`` limited to json|xml."""

    def routematch(self, url: str | None = None, environ: WSGIEnvironment | None = None) -> Any:
        if url == "":
            result = self._match("", environ)
            return result[0], result[1]
        return routes.Mapper.routematch(self, url, environ)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("requirements", {})
        if not kwargs["requirements"].get("format"):
            kwargs["requirements"]["format"] = "json|xml"
        return routes.Mapper.connect(self, *args, **kwargs)


def _project_mapper() -> Any:
    """Nova's ProjectMapper over ROUTES: each route with and without ``/{project_id}``."""
    mapper = _APIMapper()
    mapper.redirect("", "/")
    for path, handlers in ROUTES:
        for method, (controller, action) in handlers.items():
            for prefix in ("/{project_id:[0-9a-f-]+}", ""):
                mapper.connect(prefix + path, conditions={"method": [method]}, controller=controller,
                               controller_name=controller, action=action, routed_method=method)
    return mapper


def _legacy_v2(app: WSGIApplication) -> WSGIApplication:
    """LegacyV2CompatibleWrapper: microversion headers removed before dispatch."""
    def wrapper(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["openstack.legacy_v2"] = True
        environ.pop("HTTP_OPENSTACK_API_VERSION", None)
        environ.pop("HTTP_X_OPENSTACK_NOVA_API_VERSION", None)
        return app(environ, start_response)
    return wrapper


def _requested_version(request: webob.Request) -> tuple[int, int]:
    text = microversion_parse.get_version(request.headers, service_type="compute",
                                          legacy_headers=["X-OpenStack-Nova-API-Version"])
    if text is None:
        return MIN_VERSION
    if text == "latest":
        return MAX_VERSION
    version = _version(text)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise _Fault(406, "computeFault", f"Version {text} is not supported by the API.")
    return version


def _action_peek(body: bytes) -> str:
    """The action key of a body, as ``wsgi.action_peek`` finds it (400, or 404 for non-objects)."""
    try:
        decoded = json.loads(body.decode("utf-8"))
    except ValueError:
        raise _Fault(400, "badRequest", "Malformed request body") from None
    try:
        if len(decoded) != 1:
            raise _Fault(400, "badRequest", "Malformed request body")
        return str(next(iter(decoded.keys())))
    except (AttributeError, TypeError):
        raise _Fault(404, "itemNotFound", "The resource could not be found.") from None


def _reply(start_response: StartResponse, status: int, doc: Any,
           headers: Sequence[tuple[str, str]] = ()) -> list[bytes]:
    body = json.dumps(doc).encode() if doc or status in (200,) else b""
    out = [("Content-Type", "application/json; charset=UTF-8"), ("Content-Length", str(len(body))),
           (MARKER, "1"), *headers]
    start_response(f"{status} {_REASONS.get(status, 'Status')}", out)
    return [body]


_REASONS = {200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            406: "Not Acceptable", 410: "Gone", 413: "Request Entity Too Large",
            415: "Unsupported Media Type"}


def environ_for(method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> WSGIEnvironment:
    """The environ ``wsgiref`` builds for one request (what ``serve()`` hands the app)."""
    path, _, query = target.partition("?")
    env: WSGIEnvironment = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": unquote(path, "iso-8859-1"),
        "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    first = {name.lower(): value for name, value in reversed(headers)}
    env["CONTENT_TYPE"] = first.get("content-type", "text/plain")
    if first.get("content-length"):
        env["CONTENT_LENGTH"] = first["content-length"]
    for name, value in headers:
        key = name.replace("-", "_").upper()
        if key in env:
            continue
        if "HTTP_" + key in env:
            env["HTTP_" + key] += "," + value.strip()
        else:
            env["HTTP_" + key] = value.strip()
    return env


def call(nova: NovaWSGI, environ: WSGIEnvironment) -> int:
    """Run one request through the app in process; returns the status code."""
    status: list[int] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(int(line.split(" ", 1)[0]))
        return lambda data: None

    for _ in nova.app(environ, start_response):
        pass
    return status[0]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextlib.contextmanager
def serve(nova: NovaWSGI) -> Iterator[str]:
    """Serve ``nova`` on loopback in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, nova.app, server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="nova-wsgi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
