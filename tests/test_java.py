"""JDK discovery, on JDK folders laid out like real installations."""

from __future__ import annotations

from pathlib import Path

import pytest

from splade_es.engines.java import JavaNotFoundError, find_jdk, parse_feature
from splade_es.engines.spec import engine_spec


def make_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "bin" / "java").chmod(0o755)
    (home / "release").write_text(f'JAVA_VERSION="{version}"\nIMPLEMENTOR="Test"\n')
    return home


@pytest.mark.parametrize(
    ("text", "feature"), [("17.0.15", 17), ("25", 25), ("1.8.0_402", 8), ("21-ea", 21)]
)
def test_parse_feature(text, feature):
    assert parse_feature(text) == feature


def test_picks_the_newest_fitting_jdk(tmp_path):
    make_jdk(tmp_path, "jdk-17", "17.0.15")
    make_jdk(tmp_path, "jdk-21", "21.0.4")
    make_jdk(tmp_path, "jdk-25", "25.0.1")
    env = {"PATH": ""}
    es = find_jdk(engine_spec("elasticsearch"), env, roots=[str(tmp_path)])
    assert es.feature == 25
    opensearch = find_jdk(engine_spec("opensearch"), env, roots=[str(tmp_path)])
    assert opensearch.feature == 21  # 2.x cannot run on 24+


def test_engine_variable_wins_and_must_fit(tmp_path):
    jdk17 = make_jdk(tmp_path, "jdk-17", "17.0.15")
    make_jdk(tmp_path, "jdk-25", "25.0.1")
    spec = engine_spec("elasticsearch")
    with pytest.raises(
        JavaNotFoundError, match=r"ES_JAVA_HOME=.*jdk-17 is Java 17.*needs Java 21\+"
    ):
        find_jdk(spec, {"ES_JAVA_HOME": str(jdk17), "PATH": ""}, roots=[str(tmp_path)])
    os_spec = engine_spec("opensearch")
    chosen = find_jdk(os_spec, {"OPENSEARCH_JAVA_HOME": str(jdk17), "PATH": ""}, roots=[])
    assert chosen.home == jdk17


def test_java_home_that_does_not_fit_falls_back_to_installed(tmp_path):
    jdk17 = make_jdk(tmp_path, "jdk-17", "17.0.15")
    make_jdk(tmp_path, "jdk-21", "21.0.4")
    chosen = find_jdk(
        engine_spec("elasticsearch"), {"JAVA_HOME": str(jdk17), "PATH": ""}, roots=[str(tmp_path)]
    )
    assert chosen.feature == 21


def test_variable_pointing_nowhere_is_reported(tmp_path):
    with pytest.raises(JavaNotFoundError, match=r"ES_JAVA_HOME=/nonexistent is not a JDK"):
        find_jdk(
            engine_spec("elasticsearch"), {"ES_JAVA_HOME": "/nonexistent", "PATH": ""}, roots=[]
        )


def test_no_fitting_jdk_gives_a_one_line_fix(tmp_path):
    make_jdk(tmp_path, "jdk-17", "17.0.15")
    with pytest.raises(JavaNotFoundError) as caught:
        find_jdk(engine_spec("elasticsearch"), {"PATH": ""}, roots=[str(tmp_path)])
    message = str(caught.value)
    assert "\n" not in message
    assert "needs Java 21+" in message and "jdk-17 (Java 17)" in message
    assert "set ES_JAVA_HOME" in message
