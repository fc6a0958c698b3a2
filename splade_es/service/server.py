"""Running the service on uvicorn: in the foreground (``splade-es serve``) or in a thread.

The listening socket is bound before the server starts, so port 0 gives a free port whose
URL is known. ``ready(url)`` is called once the server accepts connections. SIGTERM and
SIGINT (foreground only) stop it cleanly: it stops accepting, lets the requests in flight
finish (``GRACE_S`` at most), then closes the upstream connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from splade_es.service.config import ServiceConfig
from splade_es.service.models import ServiceModels
from splade_es.service.proxy import create_app
from splade_es.service.responses import error_body

__all__ = ["GRACE_S", "ServiceThread", "bind", "serve", "url_of"]

GRACE_S = 30


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one).

    Raises:
        OSError: the address is taken or not on this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, ending normally after a graceful shutdown on SIGTERM/SIGINT
    (uvicorn's own raises the signal again once it has stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class _EngineShapedH11(H11Protocol):
    """uvicorn's h11 protocol, answering the requests h11 itself refuses (two Host headers, a
    malformed request line or Content-Length) in the engines' JSON error shape, not as text."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(error_body(400, "illegal_argument_exception", msg)).encode("ascii")
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def _server(config: ServiceConfig, models: ServiceModels) -> uvicorn.Server:
    app = create_app(config, models)
    settings = uvicorn.Config(
        app,
        http=_EngineShapedH11,  # h11 keeps absolute targets visible, so they can be refused
        lifespan="on",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=GRACE_S,
    )
    return _Server(settings)


async def _run(server: uvicorn.Server, sock: socket.socket, ready: Callable[[str], None]) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        ready(url_of(sock))
    await task


def serve(config: ServiceConfig, models: ServiceModels, ready: Callable[[str], None]) -> None:
    """Serve until SIGTERM/SIGINT; ``ready(url)`` once it accepts connections.

    Raises:
        OSError: ``config.host:config.port`` cannot be bound.

    Example:
        >>> serve(config, load_models(config), print)  # doctest: +SKIP
    """
    sock = bind(config.host, config.port)
    try:
        asyncio.run(_run(_server(config, models), sock, ready))
    finally:
        sock.close()


class ServiceThread:
    """The service in a background thread (tests, benchmarks): ``with`` it to get its URL.

    Example:
        >>> with ServiceThread(config, models) as url:  # doctest: +SKIP
        ...     requests.get(f"{url}/_splade_es/health")
    """

    def __init__(self, config: ServiceConfig, models: ServiceModels) -> None:
        self.server = _server(config, models)
        self.sock = bind(config.host, config.port)
        self.url = url_of(self.sock)
        self._thread = threading.Thread(target=self._main, name="splade-es-serve", daemon=True)
        self._started = threading.Event()

    def _main(self) -> None:
        asyncio.run(_run(self.server, self.sock, lambda _url: self._started.set()))
        self._started.set()

    def __enter__(self) -> str:
        self._thread.start()
        self._started.wait(60)
        if not self.server.started:
            raise RuntimeError(f"The service did not start at {self.url}.")
        return self.url

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(GRACE_S + 5)
        self.sock.close()
