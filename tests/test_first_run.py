"""A first start says what it does: download (with size and progress), unpacking, start, ready.

The launcher runs for real here: mvn's output is read, the artifact verified against its
checksum, unpacked, and a node process spawned and waited for. Two programs are stand-ins:
``mvn`` (a script that copies the POM's dependencies from a local folder laid out as a Maven
repository and prints what mvn 3.8 prints) and the engine (a script that answers
``_cluster/health``), so the whole first run takes a second and needs no network.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import sys
import zipfile
from pathlib import Path

import pytest
from cli_runner import cli

from splade_es.engines import ArtifactError, NodeConfig, engine_spec, start_node, stop_node
from splade_es.engines import node as node_module
from splade_es.engines.maven import fetch
from splade_es.engines.spec import MavenArtifact
from splade_es.engines.transfers import MvnConsole, amount, progress_sizes

VERSION = "8.15.0"  # an 8.x test distribution: checked against a published .sha1

FAKE_MVN = r'''#!PYTHON
"""Stand-in for mvn: copies the POM's dependencies from $FAKE_MAVEN_SOURCE."""
import os, re, shutil, sys
from pathlib import Path

args = sys.argv[1:]
repo = Path(next(a.split("=", 1)[1] for a in args if a.startswith("-Dmaven.repo.local=")))
pom = Path(args[args.index("-f") + 1]).read_text()
source = Path(os.environ["FAKE_MAVEN_SOURCE"])
print("\x1b[0m\x1b[0m[\x1b[1;34mINFO\x1b[m] Scanning for projects...")
found = re.findall(
    r"<groupId>(.*?)</groupId><artifactId>(.*?)</artifactId><version>(.*?)</version>"
    r"<type>(.*?)</type>",
    pom,
)
for group, artifact, version, kind in found:
    path = "/".join([*group.split("."), artifact, version, f"{artifact}-{version}.{kind}"])
    if not (source / path).is_file():
        print(f"[ERROR] Failed to execute goal: Could not find artifact {artifact}-{version}")
        sys.exit(1)
    url, size = (source / path).as_uri(), (source / path).stat().st_size
    print(f"Downloading from local: {url}", flush=True)
    for done in (size // 2, size):
        sys.stdout.write(f"Progress (1): {done / 1000:.1f}/{size / 1000:.1f} kB\r")
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / path, repo / path)
    print(f"{' ' * 30}\rDownloaded from local: {url} ({size / 1000:.1f} kB at 1.0 MB/s)")
print("[INFO] BUILD SUCCESS")
'''

FAKE_ENGINE = r"""#!/bin/sh
exec PYTHON - "$@" <<'EOF'
import http.server, json, os, sys, time
port = int(next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("-Ehttp.port=")))
time.sleep(float(os.environ.get("FAKE_ENGINE_DELAY", "0")))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "green"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
EOF
"""


def _python() -> str:
    """A Python the node's user can run (root runs the node as ``nobody``)."""
    return "/usr/bin/python3" if os.geteuid() == 0 else sys.executable


def _engine_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        launcher = zipfile.ZipInfo(f"elasticsearch-{VERSION}/bin/elasticsearch")
        launcher.external_attr = 0o755 << 16
        archive.writestr(launcher, FAKE_ENGINE.replace("PYTHON", _python()))
        archive.writestr(f"elasticsearch-{VERSION}/config/jvm.options", "-Xms1g\n")
    return buffer.getvalue()


@pytest.fixture
def first_run(tmp_path, monkeypatch):
    """A fresh cache, a local "remote" repository holding the engine, the mvn stand-in on
    PATH, and a JDK home; returns ``(cache, environment for the node, JDK home)``."""
    if os.geteuid() == 0 and not Path("/usr/bin/python3").is_file():
        pytest.skip("running as root needs /usr/bin/python3 for the node's user")
    artifact = engine_spec("elasticsearch", VERSION).distribution
    published = tmp_path / "remote" / artifact.repository_path
    published.parent.mkdir(parents=True)
    published.write_bytes(_engine_zip())
    digest = hashlib.sha1(published.read_bytes()).hexdigest()
    published.with_name(f"{published.name}.sha1").write_text(digest + "\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "mvn").write_text(FAKE_MVN.replace("PYTHON", sys.executable))
    (tools / "mvn").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MAVEN_SOURCE", str(tmp_path / "remote"))
    jdk = tmp_path / "jdk"
    (jdk / "bin").mkdir(parents=True)
    (jdk / "bin" / "java").write_text("")
    (jdk / "release").write_text('JAVA_VERSION="21.0.2"\n')
    os.chmod(tmp_path, 0o755)  # the node's user reads its home through hard links only
    return tmp_path / "cache", dict(os.environ), jdk


def test_a_first_start_logs_each_step_and_prints_nothing(first_run, caplog, capfd, monkeypatch):
    cache, environ, jdk = first_run
    monkeypatch.setattr(node_module, "WAITING_NOTICE_S", 0.3)
    config = NodeConfig(
        engine="elasticsearch",
        state_file=cache / "nodes" / "es.json",
        cache_dir=cache,
        version=VERSION,
        java_home=jdk,
        startup_timeout_s=60,
    )
    caplog.set_level(logging.INFO, logger="splade_es.engines")
    info = start_node(config, {**environ, "FAKE_ENGINE_DELAY": "1"})
    try:
        messages = [r.getMessage() for r in caplog.records if r.name.startswith("splade_es.")]
    finally:
        stop_node(config.state_file)
    zip_name = f"elasticsearch-{VERSION}.zip"
    expected = [
        f"elasticsearch {VERSION} is not in {cache / 'dist'} yet: fetching and unpacking it",
        f"fetching {zip_name} with mvn into {cache / 'maven'} (once; later runs reuse it)",
        f"downloading {zip_name} from local ...",
        f"downloaded {zip_name} (",
        f"unpacking {zip_name} (",
        f"installed elasticsearch {VERSION} into {cache / 'dist'}",
        f"starting elasticsearch {VERSION} (Java 21, heap 512m, log ",
        "still starting elasticsearch, ",
        f"elasticsearch {VERSION} ready at {info.url} in ",
    ]
    order = [next(i for i, m in enumerate(messages) if m.startswith(e)) for e in expected]
    assert order == sorted(order), messages
    assert "kB at 1.0 MB/s)" in messages[order[3]]
    assert not any("plugins and POMs" in m for m in messages)  # the .sha1 is not "mvn's own"
    assert capfd.readouterr() == ("", "")  # library code logs; the suite stays quiet


@pytest.mark.slow
def test_node_start_shows_the_steps_on_stderr_and_a_second_start_skips_the_download(
    first_run,
):
    cache, environ, jdk = first_run
    start = ["node", "start", "--version", VERSION, "--java-home", str(jdk), "--heap", "256m"]
    env = {**environ, "SPLADE_ES_CACHE_DIR": str(cache)}
    state = cache / "nodes" / "elasticsearch.json"
    try:
        first = cli(*start, env=env, timeout=120)
        assert first.returncode == 0, first.stderr
        assert stop_node(state) is not None
        second = cli(*start, env=env, timeout=120)
        assert second.returncode == 0, second.stderr
    finally:
        stop_node(state)
    lines = first.stderr.splitlines()
    assert lines[0].startswith(f"elasticsearch {VERSION} is not in ")
    assert f"downloading elasticsearch-{VERSION}.zip from local ..." in lines
    assert any(line.startswith(f"unpacking elasticsearch-{VERSION}.zip (") for line in lines)
    assert lines[-1].startswith(f"elasticsearch {VERSION} ready at http://127.0.0.1:")
    assert first.stdout.splitlines()[-1].startswith("http://127.0.0.1:")  # the URL stays last
    again = second.stderr.splitlines()
    assert again[0].startswith(f"starting elasticsearch {VERSION} (Java 21, heap 256m")
    assert not any("download" in line or "unpacking" in line for line in again)


def test_a_failing_mvn_run_reports_its_error_lines(first_run):
    missing = MavenArtifact("test.none", "absent", "1.0", "zip", "sha1")
    with pytest.raises(ArtifactError, match=r"(?s)could not download.*Could not find artifact"):
        fetch((missing,), first_run[0] / "maven")


ENGINE_ZIP = MavenArtifact("org.example", "engine", "1.0", "zip")
URL = "https://repo.example/maven2/org/example/engine/1.0/engine-1.0.zip"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "splade_es.engines.transfers"]


def test_mvn_progress_is_logged_every_interval_with_the_size(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="splade_es.engines.transfers")
    clock = Clock()
    console = MvnConsole([ENGINE_ZIP], tmp_path, interval_s=5.0, clock=clock)
    console.feed("\x1b[0m[\x1b[1;34mINFO\x1b[m] Scanning for projects...\nDownloading from ")
    console.feed("central: https://repo.example/maven2/org/apache/x/1/x-1.pom\nProgress (1): 4")
    console.feed(".1 kB\r          \rDownloaded from central: https://repo.example/maven2/")
    console.feed(f"org/apache/x/1/x-1.pom (4.1 kB at 9 kB/s)\nDownloading from central: {URL}\n")
    for done in range(10, 130, 10):  # 1 s per 10 MB, beside a smaller transfer
        clock.now += 1
        console.feed(f"Progress (2): {done}/132 MB | 4.1/73 kB\r")
    console.feed(f"{' ' * 20}\rDownloaded from central: {URL} (132 MB at 10 MB/s)\n")
    console.close()
    assert _messages(caplog) == [
        "mvn is fetching its own plugins and POMs (once per cache)",
        "downloading engine-1.0.zip from central ...",
        "downloading engine-1.0.zip: 50.0/132.0 MB (38%) (+1 smaller), 5 s",
        "downloading engine-1.0.zip: 100.0/132.0 MB (76%) (+1 smaller), 10 s",
        "downloaded engine-1.0.zip (132 MB at 10 MB/s)",
    ]
    assert "[INFO] Scanning for projects..." in console.lines  # colours stripped
    assert not any(line.startswith("Progress") for line in console.lines)


def test_without_progress_lines_the_growing_part_file_is_shown(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="splade_es.engines.transfers")
    clock = Clock()
    console = MvnConsole([ENGINE_ZIP], tmp_path, clock=clock)
    console.feed(f"Downloading from central: {URL}\n")  # batch mode: no progress lines
    part = tmp_path / "org/example/engine/1.0/engine-1.0.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 3_000_000)
    clock.now = 6
    console.tick()
    clock.now = 7
    console.tick()  # under the interval since the last message: nothing
    assert _messages(caplog)[-1] == "downloading engine-1.0.zip: 3.0 MB so far, 6 s"
    assert len(_messages(caplog)) == 2


def test_progress_sizes_and_amounts():
    assert progress_sizes("Progress (3): 1.2/2.3 GB | 512 B | 7/9 kB") == [
        (1.2e9, 2.3e9),
        (512.0, None),
        (7000.0, 9000.0),
    ]
    assert amount([(45e6, None)]) == "45.0 MB so far"
    assert amount([]) == "size not known yet"


def test_the_cli_handler_is_removed_after_the_block():
    from splade_es.cli.options import launch_messages

    engines = logging.getLogger("splade_es.engines")
    before = (list(engines.handlers), engines.level, engines.propagate)
    with launch_messages():
        assert engines.propagate is False and engines.getEffectiveLevel() <= logging.INFO
    assert (list(engines.handlers), engines.level, engines.propagate) == before


def test_batch_mode_lines_and_a_growing_tmp_file_are_read(caplog, tmp_path):
    # Maven 3.9 in batch mode (CI=true, -B in MAVEN_ARGS): "[INFO] " before each transfer line,
    # no progress lines, and the download lands in <file>.<random>.tmp.
    caplog.set_level(logging.INFO, logger="splade_es.engines.transfers")
    clock = Clock()
    console = MvnConsole([ENGINE_ZIP], tmp_path, clock=clock)
    console.feed(f"[INFO] Downloading from central: {URL}\n")
    partial = tmp_path / "org/example/engine/1.0/engine-1.0.zip.4213998790.tmp"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 2_000_000)
    clock.now = 6
    console.tick()
    console.feed(f"[INFO] Downloaded from central: {URL} (132 MB at 10 MB/s)\n")
    assert _messages(caplog) == [
        "downloading engine-1.0.zip from central ...",
        "downloading engine-1.0.zip: 2.0 MB so far, 6 s",
        "downloaded engine-1.0.zip (132 MB at 10 MB/s)",
    ]


def test_nested_launch_blocks_print_each_line_once(capsys):
    from splade_es.cli.options import launch_messages

    engines = logging.getLogger("splade_es.engines")
    with launch_messages(), launch_messages():
        engines.info("starting engine 1.0 ...")
        engines.warning("slow disk")
    assert capsys.readouterr().err == "starting engine 1.0 ...\nWARNING: slow disk\n"
