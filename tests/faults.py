"""Fault injection around a real client: the node itself cannot fail on demand.

``inject(cluster, plan)`` wraps the client's transport so that chosen ``_bulk`` calls fail
before reaching the node (429/503 answers, connection resets, timeouts), fail after it
handled them (the answer lost), or come back with chosen documents marked as rejected (429).
Every other call goes to the real node. ``kill_node`` crashes a real node process (SIGKILL)
and returns how to start it again on the same data.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    """What happens to one bulk call: raise ``kind``, or reject some documents (``reject``)."""

    kind: str | None = None  # "429", "503", "reset", "timeout"
    reject: set[str] = field(default_factory=set)  # document ids answered 429
    after: bool = False  # raise ``kind`` after the node handled the call (a lost answer)


@dataclass
class Recorder:
    """Bulk calls seen: the document ids of each, and whether it reached the node."""

    calls: list[list[str]] = field(default_factory=list)
    delivered: list[bool] = field(default_factory=list)


def _ids(body: Any) -> list[str]:
    if isinstance(body, bytes | str):
        lines = body.decode() if isinstance(body, bytes) else body
        rows = [json.loads(line) for line in lines.splitlines() if line.strip()]
    else:
        rows = [json.loads(r) if isinstance(r, bytes | str) else r for r in body]
    return [
        next(iter(r.values()))["_id"]
        for r in rows
        if isinstance(r, dict) and len(r) == 1 and "index" in r
    ]


def client_error(engine: str, kind: str) -> Exception:
    """What the engine's client raises for ``kind``: "429"/"503" (an answer), "reset", "timeout"."""
    if engine == "elasticsearch":
        import elastic_transport
        from elasticsearch import ApiError

        if kind == "reset":
            return elastic_transport.ConnectionError("Connection reset by peer (injected)")
        if kind == "timeout":
            return elastic_transport.ConnectionTimeout("Read timed out (injected)")
        meta = elastic_transport.ApiResponseMeta(
            status=int(kind),
            http_version="1.1",
            headers=elastic_transport.HttpHeaders(),
            duration=0.0,
            node=elastic_transport.NodeConfig("http", "127.0.0.1", 9200),
        )
        body = {"error": {"type": "injected", "reason": f"injected {kind}"}, "status": int(kind)}
        return ApiError(f"injected {kind}", meta=meta, body=body)
    import opensearchpy

    if kind == "reset":
        return opensearchpy.ConnectionError("N/A", "Connection reset by peer (injected)", OSError())
    if kind == "timeout":
        return opensearchpy.ConnectionTimeout("TIMEOUT", "Read timed out (injected)", OSError())
    return opensearchpy.TransportError(int(kind), "injected", {"error": f"injected {kind}"})


@contextmanager
def inject(cluster: Any, plan: Callable[[int, list[str]], Fault | None]) -> Iterator[Recorder]:
    """Apply ``plan(call_number, ids)`` to each bulk call while the block runs."""
    transport = cluster.client.transport
    real = transport.perform_request
    recorder = Recorder()

    def perform_request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if not path.rstrip("/").endswith("_bulk"):
            return real(method, path, *args, **kwargs)
        ids = _ids(kwargs.get("body"))
        recorder.calls.append(ids)
        fault = plan(len(recorder.calls), ids)
        if fault is not None and fault.kind is not None and not fault.after:
            recorder.delivered.append(False)
            raise client_error(cluster.engine, fault.kind)
        response = real(method, path, *args, **kwargs)
        recorder.delivered.append(True)
        if fault is not None and fault.kind is not None:
            raise client_error(cluster.engine, fault.kind)
        if fault is not None and fault.reject:
            body = response.body if hasattr(response, "body") else response
            body["errors"] = True
            for item in body["items"]:
                detail = next(iter(item.values()))
                if detail["_id"] in fault.reject:
                    detail["status"] = 429
                    detail["error"] = {
                        "type": "es_rejected_execution_exception",
                        "reason": "injected",
                    }
        return response

    transport.perform_request = perform_request
    try:
        yield recorder
    finally:
        transport.perform_request = real


@dataclass
class Relaunch:
    """How to start a killed node process again: its command, environment, folder and user."""

    command: list[str]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    log_file: str

    def start(self) -> int:
        """Start the node again (same data folder, same ports); return the new process id."""
        import subprocess

        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.uid,
                group=self.gid,
                extra_groups=[],
            )
        return process.pid


def kill_node(pid: int, log_file: str) -> Relaunch:
    """SIGKILL the node's whole process group (as a crash would) and say how to relaunch it.

    The command line, environment, working folder and user are read from ``/proc`` first.
    """
    import os
    import signal
    import time

    proc = f"/proc/{pid}"
    with open(f"{proc}/cmdline", "rb") as handle:
        command = [part.decode() for part in handle.read().split(b"\0") if part]
    with open(f"{proc}/environ", "rb") as handle:
        env = dict(
            part.decode().split("=", 1) for part in handle.read().split(b"\0") if b"=" in part
        )
    cwd = os.readlink(f"{proc}/cwd")
    with open(f"{proc}/status") as handle:
        status = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
    uid, gid = int(status["Uid"].split()[0]), int(status["Gid"].split()[0])
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _group_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        time.sleep(0.1)
    return Relaunch(command, env, cwd, uid, gid, log_file)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of process group ``pgid`` remains."""
    import os

    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
