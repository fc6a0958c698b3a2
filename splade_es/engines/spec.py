"""What a local search-engine node is made of: Maven artifacts, modules, JDK range, settings,
and the ``jvm.options`` and environment it is started with.

Pure data and pure builders; nothing here touches the network, the disk or a process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

# The engine names belong to the connection; the launcher reuses them (never the reverse).
from splade_es.cluster.config import ENGINES as ENGINES
from splade_es.cluster.config import Engine as Engine
from splade_es.engines.artifacts import MavenArtifact as MavenArtifact
from splade_es.engines.plugins import knn_plugin


@dataclass(frozen=True)
class ModuleSpec:
    """A module the test distribution lacks, assembled from published jars.

    Attributes:
        name: folder name under ``modules/`` and the plugin name.
        classname: the plugin class inside the main jar.
        description: plugin description for the descriptor file.
        jars: every jar the module needs on its class path.
        security_policy: ``plugin-security.policy`` text, or empty for none.
    """

    name: str
    classname: str
    description: str
    jars: tuple[MavenArtifact, ...]
    security_policy: str = ""


@dataclass(frozen=True)
class EngineSpec:
    """Everything needed to obtain and run one engine version.

    Attributes:
        engine: ``elasticsearch`` or ``opensearch``.
        version: the engine version.
        distribution: the integ-test-zip artifact.
        modules: modules to add to the distribution.
        java_min: lowest JDK feature release the version runs on.
        java_max: highest JDK feature release it runs on (``None``: no known upper bound).
        java_home_env: the engine's own JDK variable, honoured before ``JAVA_HOME``.
        conf_env / tmp_env / java_opts_env: environment variable names of the engine scripts.
        launcher: script under ``bin/`` that starts the node.
        settings: fixed node settings (the launcher adds ports and paths).
        plugins: plugin zips unpacked under ``plugins/<artifact>`` (e.g. the OpenSearch
            security plugin of a secured node).
    """

    engine: Engine
    version: str
    distribution: MavenArtifact
    modules: tuple[ModuleSpec, ...]
    java_min: int
    java_max: int | None
    java_home_env: str
    conf_env: str
    tmp_env: str
    java_opts_env: str
    launcher: str
    settings: tuple[tuple[str, str], ...]
    plugins: tuple[MavenArtifact, ...] = ()

    @property
    def artifacts(self) -> tuple[MavenArtifact, ...]:
        """Every Maven file the node needs, distribution first, without repeats."""
        seen: dict[str, MavenArtifact] = {self.distribution.coordinates: self.distribution}
        for module in self.modules:
            for jar in module.jars:
                seen.setdefault(jar.coordinates, jar)
        for plugin in self.plugins:
            seen.setdefault(plugin.coordinates, plugin)
        return tuple(seen.values())

    @property
    def key(self) -> str:
        """The cache folder name; a home with plugins never shares one with a plain home."""
        return "-".join([self.engine, self.version, *(p.artifact for p in self.plugins)])


_COMMON_SETTINGS: tuple[tuple[str, str], ...] = (
    ("discovery.type", "single-node"),
    ("network.host", "127.0.0.1"),
    # A node on a nearly full disk must not turn indices read-only under a test run.
    ("cluster.routing.allocation.disk.threshold_enabled", "false"),
)

ELASTICSEARCH_VERSION = "9.5.4"
OPENSEARCH_VERSION = "2.19.6"

# Maven Central holds no .sha1/.sha512 (nor .md5) for the Elasticsearch 9.x integ-test-zips
# (checked for every 9.x there on 2026-11-26; 8.x ones have a .sha1). Their SHA-512 is
# pinned here instead, as measured from two independent downloads that agreed.
_PINNED_ES_SHA512 = {
    "9.5.4": "a75df614854ace52dd0bce977662b3792873ac077ec0af9026cd0b2a0eb119e44"
    "9910f8eb8ed577d1a83c51c6ee6af71bf5004c3cf5b418c979186de8b5dd9e6",
}


def elasticsearch_spec(version: str = ELASTICSEARCH_VERSION) -> EngineSpec:
    """Elasticsearch from its integ-test-zip (server, x-pack core and security, netty).

    The integ-test-zip has no ``mapper-extras`` module, so it lacks ``rank_features``; it has
    ``sparse_vector``, ``binary`` and ``dense_vector``.
    """
    major = _major(version, "Elasticsearch")
    if major < 8:
        raise ValueError(
            f"Elasticsearch {version} is not supported by the local launcher: use 8.x or 9.x "
            f"(e.g. --version {ELASTICSEARCH_VERSION})."
        )
    pinned = _PINNED_ES_SHA512.get(version)
    if major >= 9 and pinned is None:
        raise ValueError(
            f"Elasticsearch {version}: Maven Central publishes no checksum for 9.x test "
            f"distributions, and this package pins one only for {', '.join(_PINNED_ES_SHA512)}. "
            f"Use --version {ELASTICSEARCH_VERSION} (or an 8.x version, whose .sha1 is "
            "published), or pass --home with an installation you verified yourself."
        )
    return EngineSpec(
        engine="elasticsearch",
        version=version,
        distribution=MavenArtifact(
            "org.elasticsearch.distribution.integ-test-zip",
            "elasticsearch",
            version,
            packaging="zip",
            checksum="sha512" if pinned else "sha1",
            pinned=pinned,
        ),
        modules=(),
        java_min=21 if major >= 9 else 17,
        java_max=None,
        java_home_env="ES_JAVA_HOME",
        conf_env="ES_PATH_CONF",
        tmp_env="ES_TMPDIR",
        java_opts_env="ES_JAVA_OPTS",
        launcher="elasticsearch",
        settings=(*_COMMON_SETTINGS, ("xpack.security.enabled", "false")),
    )


_PAINLESS_POLICY = """grant {
  // Painless compiles scripts into classes at run time.
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
"""


def opensearch_spec(version: str = OPENSEARCH_VERSION) -> EngineSpec:
    """OpenSearch from its integ-test-zip plus ``mapper-extras``, ``lang-painless`` and, where
    this package pins its checksum, the k-NN plugin.

    The integ-test-zip carries only the netty transport; ``rank_features`` and the
    ``rank_feature`` query live in ``mapper-extras``, which OpenSearch publishes as
    ``mapper-extras-client``; Painless comes with its SPI, ANTLR and ASM jars. The k-NN
    plugin (dense and MUVERA first stages) runs its Lucene engine only: the Maven artifact
    has no native libraries.
    """
    major = _major(version, "OpenSearch")
    if major != 2:
        raise ValueError(
            f"OpenSearch {version} is not supported by the local launcher: use 2.x "
            "(e.g. --version 2.19.6), or start your own node and pass its URL."
        )

    return EngineSpec(
        engine="opensearch",
        version=version,
        distribution=MavenArtifact(
            "org.opensearch.distribution.integ-test-zip",
            "opensearch",
            version,
            packaging="zip",
            checksum="sha512",
        ),
        modules=_opensearch_modules(version),
        # 2.x relies on the Java security manager, which JDK 24 removed.
        java_min=11,
        java_max=23,
        java_home_env="OPENSEARCH_JAVA_HOME",
        conf_env="OPENSEARCH_PATH_CONF",
        tmp_env="OPENSEARCH_TMPDIR",
        java_opts_env="OPENSEARCH_JAVA_OPTS",
        launcher="opensearch",
        settings=_COMMON_SETTINGS,
        plugins=knn_plugin(version),
    )


def _opensearch_modules(version: str) -> tuple[ModuleSpec, ...]:
    """``mapper-extras`` and ``lang-painless`` for OpenSearch ``version``, from their jars."""

    def os_jar(group: str, artifact: str) -> MavenArtifact:
        return MavenArtifact(group, artifact, version, checksum="sha512")

    asm = tuple(
        MavenArtifact("org.ow2.asm", name, "9.7")
        for name in ("asm", "asm-analysis", "asm-commons", "asm-tree", "asm-util")
    )
    return (
        ModuleSpec(
            name="mapper-extras",
            classname="org.opensearch.index.mapper.MapperExtrasPlugin",
            description="Adds advanced field mappers (rank_features, rank_feature query)",
            jars=(os_jar("org.opensearch.plugin", "mapper-extras-client"),),
        ),
        ModuleSpec(
            name="lang-painless",
            classname="org.opensearch.painless.PainlessPlugin",
            description="An easy, safe and fast scripting language for OpenSearch",
            jars=(
                os_jar("org.opensearch.plugin", "lang-painless"),
                os_jar("org.opensearch.plugin", "opensearch-scripting-painless-spi"),
                MavenArtifact("org.antlr", "antlr4-runtime", "4.13.1"),
                *asm,
            ),
            security_policy=_PAINLESS_POLICY,
        ),
    )


# The newest OpenSearch whose security plugin is on Maven Central (checked 2026-11-26: the
# plugin is published for 2.19.4.0, not for 2.19.5 or 2.19.6). The plugin must match the
# engine version exactly.
SECURED_OPENSEARCH_VERSION = "2.19.4"


def secured_opensearch_spec(version: str = SECURED_OPENSEARCH_VERSION) -> EngineSpec:
    """:func:`opensearch_spec` plus the ``opensearch-security`` plugin (TLS, users, roles).

    Elasticsearch has no secured counterpart here: its security (x-pack) is not in the
    integ-test-zip, and the default distribution is not on Maven Central.
    """
    if version != SECURED_OPENSEARCH_VERSION:
        raise ValueError(
            f"A secured OpenSearch node needs the opensearch-security plugin of the same "
            f"version, and this package knows it for {SECURED_OPENSEARCH_VERSION} only, not "
            f"{version!r}: pass --version {SECURED_OPENSEARCH_VERSION} (or leave it out)."
        )
    plugin = MavenArtifact(
        "org.opensearch.plugin",
        "opensearch-security",
        f"{version}.0",
        packaging="zip",
        checksum="sha512",
    )
    return replace(opensearch_spec(version), plugins=(plugin,))


def engine_spec(engine: str, version: str | None = None) -> EngineSpec:
    """The spec for ``engine`` at ``version`` (the tested default when ``None``)."""
    if engine == "elasticsearch":
        return elasticsearch_spec(version or ELASTICSEARCH_VERSION)
    if engine == "opensearch":
        return opensearch_spec(version or OPENSEARCH_VERSION)
    raise ValueError(f"Unknown engine {engine!r}: expected one of {', '.join(ENGINES)}.")


def plugin_descriptor(spec: EngineSpec, module: ModuleSpec) -> str:
    """The ``plugin-descriptor.properties`` text for an assembled module."""
    version_key = (
        "elasticsearch.version" if spec.engine == "elasticsearch" else ("opensearch.version")
    )
    lines = [
        f"description={module.description}",
        f"version={spec.version}",
        f"name={module.name}",
        f"classname={module.classname}",
        "java.version=11",
        f"{version_key}={spec.version}",
        "custom.foldername=",
        "extended.plugins=",
        "has.native.controller=false",
    ]
    return "\n".join(lines) + "\n"


def node_settings(
    spec: EngineSpec, *, http_port: int, transport_port: int, data: str, logs: str
) -> list[str]:
    """Command-line ``-Ekey=value`` arguments for a single loopback node."""
    pairs = [
        *spec.settings,
        ("http.port", str(http_port)),
        ("transport.port", str(transport_port)),
        ("path.data", data),
        ("path.logs", logs),
    ]
    return [f"-E{key}={value}" for key, value in pairs]


def _major(version: str, name: str) -> int:
    head = version.split(".", 1)[0]
    if not head.isdigit():
        raise ValueError(f"{name} version {version!r} is not of the form MAJOR.MINOR.PATCH.")
    return int(head)


def localise_jvm_options(text: str, *, logs: Path, data: Path) -> str:
    """Point the relative ``logs/`` and ``data`` paths of a stock ``jvm.options`` at ours.

    The stock file writes GC logs, error files and heap dumps relative to the engine home,
    which is shared and read-only here.
    """
    out = []
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            line = line.replace("=logs/", f"={logs}/").replace("file=logs/", f"file={logs}/")
            line = line.replace(":logs/", f":{logs}/")
            if line.endswith("HeapDumpPath=data"):
                line = line[: -len("data")] + str(data)
        out.append(line)
    return "\n".join(out) + "\n"


def node_environment(
    spec: EngineSpec,
    environ: Mapping[str, str],
    java_home: Path,
    conf: Path,
    tmp: Path,
    heap: str,
) -> dict[str, str]:
    """The caller's environment without engine or JDK variables, plus the node's own: its JDK,
    config folder, temp folder and heap (both ``-Xms`` and ``-Xmx``)."""
    env = {k: v for k, v in environ.items() if not k.startswith(("ES_", "OPENSEARCH_"))}
    env.pop("JAVA_HOME", None)
    env.update(
        {
            spec.java_home_env: str(java_home),
            spec.conf_env: str(conf),
            spec.tmp_env: str(tmp),
            spec.java_opts_env: f"-Xms{heap} -Xmx{heap}",
        }
    )
    return env
