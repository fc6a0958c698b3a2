"""The exceptions the CLI reports as a plain message instead of a traceback."""

from __future__ import annotations

from splade_es.cluster.connection import ClusterError
from splade_es.engines import (
    ArtifactError,
    InstallError,
    JavaNotFoundError,
    NodeError,
    SecuritySetupError,
)

USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    ImportError,
    FileNotFoundError,
    ClusterError,
    ArtifactError,
    InstallError,
    JavaNotFoundError,
    NodeError,
    SecuritySetupError,
)
