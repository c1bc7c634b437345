"""``statelock serve`` and ``statelock check-config``: one validation for both.

``serve`` validates the config exactly as ``check-config`` does (``sidecar.preflight``),
binds the listening socket before anything else (a busy port is one line and exit
1, and nothing was opened), then opens the components and logs "listening" once
the socket accepts. SIGTERM or SIGINT stops it gracefully: readiness answers 503 at
once (for ``shutdown_drain_s``, requests are still accepted so a load balancer can
notice), then the listener closes, requests in flight get ``shutdown_timeout_s`` to
finish, the components close (the decision log flushed), and one line says what was
drained; the exit status is 0.

With ``server.workers`` > 1 the same command is a supervisor instead
(``sidecar.cli.supervisor``), which starts ``serve --worker K`` processes; each binds
the port with SO_REUSEPORT, reports on its ready pipe once it listens, and stops
(draining as above) when the supervisor's lifeline pipe closes.

Exit status: 0 stopped cleanly; 1 the machine refused (a busy port, a certificate,
a directory, a component that could not open); 2 the configuration is invalid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable

from sidecar import __version__
from sidecar.cli.listen import bind_socket
from sidecar.config import Config, explain, load_config
from sidecar.errors import SidecarError, StartupError
from sidecar.locks.model import redact_url
from sidecar.preflight import check_connections, check_offline
from sidecar.workers import WorkerInfo, worker_config

log = logging.getLogger("sidecar.serve")

ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf'


def serve(path: str, worker: int = 0, ready_fd: int | None = None, lifeline_fd: int | None = None) -> int:
    """Run Statelock on the config at ``path`` until SIGTERM/SIGINT; the exit status.

    ``worker`` 0: the command as an operator runs it (a supervisor when
    ``server.workers`` > 1). ``worker`` K >= 1: worker K of a supervisor, with the
    ready and lifeline pipes it was handed.
    """
    cfg = load_config(path)
    if cfg.server.workers > 1 and not worker:
        from sidecar.cli.supervisor import supervise

        return supervise(path, cfg)
    if worker:
        cfg = worker_config(cfg, worker)
        _name_worker_in_log(worker)
    tls = check_offline(cfg)
    info = WorkerInfo(max(worker, 1), cfg.server.workers, os.getpid())
    try:
        sock = bind_socket(cfg, reuse_port=bool(worker))
    except StartupError as exc:
        log.error("%s", exc.message)
        return 1
    try:
        with asyncio.Runner(loop_factory=_loop_factory(cfg.server.event_loop)) as runner:
            return runner.run(_run(cfg, sock, tls, info, ready_fd, lifeline_fd))
    except SidecarError as exc:
        log.error("statelock could not start: %s: %s", exc.code, exc.message)
        return 1


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``server.event_loop`` names (None: the standard library's)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def _name_worker_in_log(worker: int) -> None:
    """Put ``w<K>`` into every line this worker logs, so one stream tells the workers apart."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s w{worker} %(name)s: %(message)s"))


def _tell_ready(ready_fd: int | None) -> None:
    """Tell the supervisor (if any) that this worker listens: one byte on its ready pipe."""
    if ready_fd is None:
        return
    try:
        os.write(ready_fd, b"r")
        os.close(ready_fd)
    except OSError:
        log.warning("the supervisor's ready pipe is gone")


def _watch_lifeline(loop: asyncio.AbstractEventLoop, lifeline_fd: int | None, stop: Callable[[str], None]) -> None:
    """Stop (as on SIGTERM) once the supervisor's end of the lifeline pipe closes: it is gone."""
    if lifeline_fd is None:
        return

    def readable() -> None:
        try:
            data = os.read(lifeline_fd, 64)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(lifeline_fd)
            os.close(lifeline_fd)
            stop("supervisor gone")

    loop.add_reader(lifeline_fd, readable)


async def _run(cfg: Config, sock: socket.socket, tls: ssl.SSLContext | None, worker: WorkerInfo,
               ready_fd: int | None = None, lifeline_fd: int | None = None) -> int:
    from aiohttp import web
    from aiohttp.log import access_logger

    from sidecar.app import create_app
    from sidecar.handlers.lifecycle import STATE

    app = create_app(cfg, worker)
    # NOTE: access_log=None is aiohttp's "no access logger": no per-request formatting or level check.
    runner = web.AppRunner(app, handle_signals=False, access_log_format=ACCESS_LOG_FORMAT,
                           access_log=access_logger if cfg.server.access_log else None,
                           shutdown_timeout=cfg.shutdown_timeout_s)
    try:
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_stop(why: str) -> None:
        received.append(why)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)
    _watch_lifeline(loop, lifeline_fd, on_stop)
    in_flight = 0
    try:
        site = web.SockSite(runner, sock, ssl_context=tls)
        await site.start()
        scheme = "https" if tls else "http"
        of = f", worker {worker.index} of {worker.count}" if worker.count > 1 else ""
        log.info("statelock %s listening on %s://%s (event loop %s%s)", __version__, scheme, cfg.listen,
                 type(loop).__module__.split(".")[0], of)
        _tell_ready(ready_fd)
        await stop.wait()
        state = app[STATE]
        state.draining = True
        log.info("%s received: draining (readiness 503), %d requests in flight",
                 received[0] if received else "stop", state.in_flight)
        if cfg.shutdown_drain_s:
            await asyncio.sleep(cfg.shutdown_drain_s)
        in_flight = state.in_flight
    finally:
        # NOTE: closes the listener (new connections are refused), lets requests in flight finish
        # within shutdown_timeout_s, then closes the components (the decision log last-flushed).
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    state = app[STATE]
    log.info("statelock stopped: %d requests were in flight at the stop, %d of them cut off after "
             "%gs; %d answered in all; components closed", in_flight, state.cut_off,
             cfg.shutdown_timeout_s, state.served)
    return 0


def check(path: str | None, do_explain: bool, connect: bool, markdown: bool = False) -> int:
    """``check-config``: validate as ``serve`` does (and reach the components with ``connect``)."""
    if do_explain and markdown:
        from sidecar.config.reference import markdown as reference

        sys.stdout.write(reference())
        return 0
    if do_explain:
        for key, default, text in explain():
            print(f"{key:32} default {default}\n{'':32} {text}")
        return 0
    if path is None:
        print("statelock check-config: give a FILE (or --explain)", file=sys.stderr)
        return 2
    cfg = load_config(path)
    try:
        check_offline(cfg)
    except StartupError as exc:
        print(f"statelock check-config: {path}: {exc.message}", file=sys.stderr)
        return 2
    print(f"{path}: ok (serve would accept it)")
    print(f"  listen   {cfg.listen}   mode {cfg.mode}")
    target = cfg.backend.upstream_url if cfg.backend.kind == "upstream" else cfg.backend.driver.get("name")
    print(f"  backend  {cfg.backend.kind} -> {target}")
    print(f"  identity {cfg.identity.mode}")
    print(f"  locks    {redact_url(cfg.lockstore.url)}")
    print(f"  policy   {cfg.policy.engine} ({cfg.policy.bundle})")
    print(f"  audit    {cfg.audit.path} (on_failure: {cfg.audit.on_failure})")
    if not connect:
        return 0
    failed = 0
    for reached in asyncio.run(check_connections(cfg)):
        failed += not reached.ok
        print(f"  {'ok  ' if reached.ok else 'FAIL'} {reached.component}: {reached.detail}")
    if failed:
        print(f"statelock check-config: {failed} component(s) did not answer", file=sys.stderr)
        return 2
    return 0
