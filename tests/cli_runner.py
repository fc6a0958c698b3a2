"""Run the CLI as users do: ``python -m splade_es ...`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def cli(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``splade-es *args``; without ``env``, this environment minus ``ES_*``/``OPENSEARCH_*``
    (so a test's ``--es-url`` is the only cluster the command sees)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "OPENSEARCH_"))}
    return subprocess.run(
        [sys.executable, "-m", "splade_es", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
