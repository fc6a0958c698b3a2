"""Pure parts of the launcher: specs, POM, descriptors, settings, checksums, jvm.options."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from splade_es.engines import maven
from splade_es.engines.maven import ArtifactError, published_digest, verify
from splade_es.engines.node import localise_jvm_options
from splade_es.engines.spec import (
    MavenArtifact,
    engine_spec,
    node_settings,
    plugin_descriptor,
)


def test_default_specs():
    es = engine_spec("elasticsearch")
    assert es.version.startswith("9.")
    assert es.java_min == 21 and es.java_home_env == "ES_JAVA_HOME"
    assert es.distribution.pinned and len(es.distribution.pinned) == 128
    os_ = engine_spec("opensearch")
    assert os_.java_max == 23  # the security manager is gone from JDK 24
    names = {m.name for m in os_.modules}
    assert names == {"mapper-extras", "lang-painless"}
    coordinates = [a.coordinates for a in os_.artifacts]
    assert coordinates[0].startswith("org.opensearch.distribution.integ-test-zip:opensearch:")
    assert len(coordinates) == len(set(coordinates))


def test_engine_spec_errors_name_the_value():
    with pytest.raises(ValueError, match=r"Unknown engine 'solr'"):
        engine_spec("solr")
    with pytest.raises(ValueError, match=r"Elasticsearch 7\.17\.0 is not supported"):
        engine_spec("elasticsearch", "7.17.0")
    with pytest.raises(ValueError, match=r"9\.1\.0: Maven Central publishes no checksum"):
        engine_spec("elasticsearch", "9.1.0")
    with pytest.raises(ValueError, match=r"OpenSearch 3\.0\.0 is not supported"):
        engine_spec("opensearch", "3.0.0")
    with pytest.raises(ValueError, match=r"'latest' is not of the form"):
        engine_spec("opensearch", "latest")


def test_elasticsearch_8_uses_the_published_sha1():
    spec = engine_spec("elasticsearch", "8.19.21")
    assert spec.distribution.checksum == "sha1" and spec.distribution.pinned is None
    assert spec.java_min == 17


def test_repository_path_and_descriptor():
    art = MavenArtifact("org.opensearch.plugin", "lang-painless", "2.19.6")
    assert (
        art.repository_path == "org/opensearch/plugin/lang-painless/2.19.6/lang-painless-2.19.6.jar"
    )
    spec = engine_spec("opensearch")
    text = plugin_descriptor(spec, spec.modules[0])
    assert "name=mapper-extras\n" in text
    assert "classname=org.opensearch.index.mapper.MapperExtrasPlugin\n" in text
    assert f"opensearch.version={spec.version}\n" in text


def test_node_settings_bind_loopback_and_disable_security():
    spec = engine_spec("elasticsearch")
    args = node_settings(spec, http_port=1234, transport_port=1235, data="/d", logs="/l")
    assert "-Enetwork.host=127.0.0.1" in args
    assert "-Expack.security.enabled=false" in args
    assert "-Ehttp.port=1234" in args and "-Etransport.port=1235" in args
    assert "-Epath.data=/d" in args and "-Epath.logs=/l" in args


def test_pom_lists_artifacts_and_checksum_companions():
    pinned = MavenArtifact("g", "a", "1", "zip", "sha512", pinned="0" * 128)
    plain = MavenArtifact("g", "b", "2", "jar", "sha1")
    pom = maven.pom_for((pinned, plain))
    assert pom.count("<dependency>") == 3  # a pinned artifact needs no companion file
    assert "<type>jar.sha1</type>" in pom and "<type>zip.sha512</type>" not in pom
    assert "http" not in pom  # no repository host in the POM: mvn settings decide


def _put(repo: Path, art: MavenArtifact, content: bytes, digest: str | None = None) -> Path:
    path = repo / art.repository_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if digest is not None:
        path.with_name(f"{path.name}.{art.checksum}").write_text(f"{digest}  {path.name}\n")
    return path


def test_verify_accepts_the_published_digest(tmp_path):
    art = MavenArtifact("g", "a", "1", checksum="sha512")
    path = _put(tmp_path, art, b"jar bytes", hashlib.sha512(b"jar bytes").hexdigest())
    assert verify(tmp_path, art) == path


def test_verify_deletes_a_corrupt_download(tmp_path):
    art = MavenArtifact("g", "a", "1", checksum="sha1")
    path = _put(tmp_path, art, b"tampered", hashlib.sha1(b"original").hexdigest())
    with pytest.raises(ArtifactError, match=r"Checksum mismatch for g:a:1:jar.*run the command"):
        verify(tmp_path, art)
    assert not path.exists()


def test_verify_uses_the_pin_when_there_is_no_checksum_file(tmp_path):
    good = MavenArtifact("g", "z", "1", "zip", "sha512", pinned=hashlib.sha512(b"z").hexdigest())
    _put(tmp_path, good, b"z")
    verify(tmp_path, good)
    bad = MavenArtifact("g", "z", "1", "zip", "sha512", pinned="0" * 128)
    with pytest.raises(ArtifactError, match="Checksum mismatch"):
        verify(tmp_path, bad)


def test_verify_reports_a_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match=r"g:a:1:jar is not in"):
        verify(tmp_path, MavenArtifact("g", "a", "1"))


@pytest.mark.parametrize("text", ["", "not-a-digest", "abc123"])
def test_published_digest_rejects_garbage(text):
    with pytest.raises(ArtifactError, match="is not a digest"):
        published_digest(text, MavenArtifact("g", "a", "1"))


def test_fetch_without_mvn_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ArtifactError, match=r"Maven \('mvn'\) is needed.*apt-get install maven"):
        maven.fetch((MavenArtifact("g", "a", "1"),), tmp_path / "repo")


def test_localise_jvm_options_moves_logs_and_dumps():
    stock = "\n".join(
        [
            "## comment with logs/gc.log stays",
            "-XX:HeapDumpPath=data",
            "-XX:ErrorFile=logs/hs_err_pid%p.log",
            "9-:-Xlog:gc*,gc+age=trace,safepoint:file=logs/gc.log:utctime,pid,tags",
            "8:-Xloggc:logs/gc.log",
        ]
    )
    out = localise_jvm_options(stock, logs=Path("/w/logs"), data=Path("/w/data"))
    assert "## comment with logs/gc.log stays" in out
    assert "-XX:HeapDumpPath=/w/data" in out
    assert "-XX:ErrorFile=/w/logs/hs_err_pid%p.log" in out
    assert "file=/w/logs/gc.log:utctime" in out
    assert "-Xloggc:/w/logs/gc.log" in out
