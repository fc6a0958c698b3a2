"""Find a JDK whose feature release fits an engine version."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from splade_es.engines.spec import EngineSpec

# Where package managers put JDKs (Debian/Ubuntu, Fedora, Homebrew, macOS, SDKMAN).
JVM_ROOTS: tuple[str, ...] = (
    "/usr/lib/jvm",
    "/usr/java",
    "/opt/homebrew/opt",
    "/usr/local/opt",
    "/Library/Java/JavaVirtualMachines",
    "~/.sdkman/candidates/java",
)


class JavaNotFoundError(RuntimeError):
    """No suitable JDK was found, or the one named by an environment variable does not fit."""


@dataclass(frozen=True)
class Jdk:
    home: Path
    feature: int


def parse_feature(version: str) -> int:
    """Feature release of a Java version string: ``"17.0.15"`` -> 17, ``"1.8.0_402"`` -> 8."""
    match = re.match(r"\s*(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise ValueError(f"Not a Java version: {version!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def jdk_at(home: Path) -> Jdk | None:
    """The JDK installed at ``home``, or ``None`` if there is no ``bin/java`` there."""
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    release = home / "release"
    if release.is_file():
        match = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        if match:
            return Jdk(home, parse_feature(match.group(1)))
    result = subprocess.run(
        [str(java), "-XshowSettings:properties", "-version"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"java\.specification\.version = (\S+)", result.stderr)
    return Jdk(home, parse_feature(match.group(1))) if match else None


def _candidates(environ: Mapping[str, str], roots: Iterable[str]) -> list[Path]:
    homes: list[Path] = []
    for root in roots:
        base = Path(root).expanduser()
        if base.is_dir():
            for child in sorted(base.iterdir()):
                home = child / "Contents" / "Home" if (child / "Contents").is_dir() else child
                homes.append(home.resolve())
    on_path = shutil.which("java", path=environ.get("PATH"))
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    unique: dict[Path, None] = dict.fromkeys(homes)
    return list(unique)


def _fits(spec: EngineSpec, feature: int) -> bool:
    return feature >= spec.java_min and (spec.java_max is None or feature <= spec.java_max)


def _range(spec: EngineSpec) -> str:
    if spec.java_max is None:
        return f"{spec.java_min}+"
    return f"{spec.java_min} to {spec.java_max}"


def find_jdk(
    spec: EngineSpec,
    environ: Mapping[str, str],
    explicit: Path | None = None,
    roots: Iterable[str] = JVM_ROOTS,
) -> Jdk:
    """Pick the JDK to run ``spec`` with.

    Order: ``explicit`` (a ``--java-home`` flag), the engine's own variable
    (``ES_JAVA_HOME``/``OPENSEARCH_JAVA_HOME``), ``JAVA_HOME``, then installed JDKs, newest
    fitting one first. A JDK named explicitly or by a variable must fit, or this fails rather
    than silently running another one.

    Raises:
        JavaNotFoundError: with the fix in the message.
    """
    named = [(str(explicit), "--java-home")] if explicit else []
    for variable in (spec.java_home_env, "JAVA_HOME"):
        if environ.get(variable):
            named.append((environ[variable], variable))
    for value, source in named:
        jdk = jdk_at(Path(value).expanduser())
        if jdk is None:
            raise JavaNotFoundError(
                f"{source}={value} is not a JDK (no bin/java there): point it at a JDK "
                f"{_range(spec)} home or unset it."
            )
        if _fits(spec, jdk.feature):
            return jdk
        if source != "JAVA_HOME":
            raise JavaNotFoundError(
                f"{source}={value} is Java {jdk.feature}, but {spec.engine} {spec.version} needs "
                f"Java {_range(spec)}: point {source} at a fitting JDK."
            )
    found = [jdk for home in _candidates(environ, roots) if (jdk := jdk_at(home)) is not None]
    fitting = sorted((j for j in found if _fits(spec, j.feature)), key=lambda j: -j.feature)
    if fitting:
        return fitting[0]
    seen = ", ".join(f"{j.home} (Java {j.feature})" for j in found) or "none"
    raise JavaNotFoundError(
        f"{spec.engine} {spec.version} needs Java {_range(spec)}; JDKs found: {seen}. Install "
        f"one (e.g. 'apt-get install openjdk-{spec.java_max or 21}-jdk-headless') or set "
        f"{spec.java_home_env} to its home."
    )
