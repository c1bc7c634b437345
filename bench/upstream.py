"""The Nova-like upstream (nginx answering canned JSON) and the nginx reverse proxy.

Both are nginx with one worker, each its own master process, so the upstream costs
next to nothing and the proxy is a real extra hop on its own process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# A Nova 2.1 "show server" body (~1.5 KB, a typical size); ``__ID__`` becomes nginx's $1.
_SERVER: dict[str, object] = {
    "id": "__ID__",
    "name": "bench-vm",
    "status": "ACTIVE",
    "tenant_id": "demo",
    "user_id": "alice",
    "metadata": {},
    "hostId": "3f7e0d1c6b2a4e5f9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c",
    "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b",
              "links": [{"rel": "bookmark",
                         "href": "http://nova/images/70a599e0-31e7-49b7-b260-868f441e862b"}]},
    "flavor": {"id": "1", "links": [{"rel": "bookmark", "href": "http://nova/flavors/1"}]},
    "created": "2026-11-01T10:00:00Z",
    "updated": "2026-11-01T10:00:05Z",
    "addresses": {"private": [{"addr": "192.0.2.10", "version": 4,
                               "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01",
                               "OS-EXT-IPS:type": "fixed"}]},
    "accessIPv4": "",
    "accessIPv6": "",
    "links": [{"rel": "self", "href": "http://nova/v2.1/servers/__ID__"},
              {"rel": "bookmark", "href": "http://nova/servers/__ID__"}],
    "OS-DCF:diskConfig": "MANUAL",
    "progress": 0,
    "OS-EXT-AZ:availability_zone": "nova",
    "config_drive": "",
    "key_name": None,
    "OS-SRV-USG:launched_at": "2026-11-01T10:00:04.000000",
    "OS-SRV-USG:terminated_at": None,
    "OS-EXT-SRV-ATTR:host": "cmp-1",
    "OS-EXT-SRV-ATTR:instance_name": "instance-00000001",
    "OS-EXT-SRV-ATTR:hypervisor_hostname": "cmp-1.example",
    "OS-EXT-STS:task_state": None,
    "OS-EXT-STS:vm_state": "active",
    "OS-EXT-STS:power_state": 1,
    "os-extended-volumes:volumes_attached": [],
    "security_groups": [{"name": "default"}],
}


def canned_server_json() -> str:
    """The canned body with ``$1`` (the id nginx captured) in place of the id."""
    return json.dumps({"server": _SERVER}, separators=(",", ":")).replace("__ID__", "$1")


def _nginx_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _common(prefix: Path) -> str:
    return f"""
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
"""


def _http_common(prefix: Path) -> str:
    return f"""
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_body_buffer_size 128k;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server_tokens off;
"""


def upstream_conf(prefix: Path, port: int) -> str:
    """nginx as the Nova-like upstream: canned show, 202 for actions, {} for the rest."""
    body = _nginx_escape(canned_server_json())
    return _common(prefix) + f"""
http {{
{_http_common(prefix)}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location ~ ^/v2\\.1/servers/([0-9a-fA-F-]+)$ {{
            return 200 '{body}';
        }}
        location ~ ^/v2\\.1/servers/[0-9a-fA-F-]+/action$ {{
            return 202 '';
        }}
        location / {{
            return 200 '{{}}';
        }}
    }}
}}
"""


def proxy_conf(prefix: Path, port: int, upstream_port: int) -> str:
    """nginx as a plain keep-alive reverse proxy in front of the upstream (the peer hop)."""
    return _common(prefix) + f"""
http {{
{_http_common(prefix)}
    upstream nova {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://nova;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering on;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise RuntimeError("nginx not found (bench/setup.sh installs nginx-light)")
    return found


def write_conf(prefix: Path, text: str) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def nginx_argv(prefix: Path, conf: Path) -> list[str]:
    """The command that runs nginx in the foreground on ``conf`` (``user`` stays the default)."""
    return [nginx_binary(), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
