"""Versions of the libraries that decide the numbers skbert computes.

They are stamped into pickles (a mismatch at load is warned about, as
scikit-learn does with ``InconsistentVersionWarning``) and into the keys of
the embedding cache and the ONNX export folder, so that an upgrade that
changes the numbers can never serve vectors computed before it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version

from .options import on_openvino, runner, runs_exported_graph
from .report import user_stacklevel

__all__ = [
    "ONNX_EXPORT_VERSION",
    "OPENVINO_GRAPH_VERSION",
    "InconsistentVersionWarning",
    "__version__",
    "compute_stamp",
    "installed_versions",
]

#: skbert's version (``skbert.__version__``).
__version__ = "0.2.0"
#: Bumped when the recipe that exports a checkpoint to ONNX for
#: ``backend="onnx"`` changes (older exports and their cached vectors are then
#: ignored).
ONNX_EXPORT_VERSION = "5"
#: Bumped when the graph ``backend="openvino"`` compiles changes: which export
#: it reads, and how its int8 model is made (older int8 models and the cached
#: vectors of older graphs are then ignored). 2: the export before ONNX
#: Runtime's fusions; 3: int8 calibrated on 1,000 sentences instead of 300.
OPENVINO_GRAPH_VERSION = "3"

#: The packages whose versions are recorded (``None`` when not installed).
PACKAGES = ("skbert", "torch", "transformers", "tokenizers", "onnxruntime")
#: Those that take part in every computation (ONNX Runtime only in ONNX's).
_ALWAYS = ("skbert", "torch", "transformers", "tokenizers")


class InconsistentVersionWarning(UserWarning):
    """A pickle was written with other versions of the libraries skbert uses.

    Vectors may differ slightly (or the file may not load at all) when torch,
    transformers, tokenizers, ONNX Runtime or skbert itself changed; refit
    the estimator with the installed versions, or install those it names.

    Attributes
    ----------
    package : str
        The library whose version differs.
    original : str or None
        Its version when the pickle was written.
    current : str or None
        Its version now.
    """

    def __init__(self, package: str, original: str | None, current: str | None):
        self.package = package
        self.original = original
        self.current = current
        super().__init__(
            f"This skbert estimator was pickled with {package} {original} and is "
            f"loaded with {package} {current}. Its vectors may differ from those "
            "computed when it was saved (or loading may fail); refit it with the "
            f"installed versions, or install {package}=={original}."
        )

    def __reduce__(self):  # warnings and exceptions may be pickled by joblib
        return type(self), (self.package, self.original, self.current)


@functools.cache
def _version(package: str) -> str | None:
    if package == "skbert":
        return __version__
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def installed_versions() -> dict[str, str | None]:
    """The installed version of each package in :data:`PACKAGES`."""
    return {package: _version(package) for package in PACKAGES}


def _versions_of(packages: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each of ``packages``: as :func:`installed_versions`
    records it, for the packages beyond :data:`PACKAGES` (OpenVINO) from their
    metadata."""
    recorded = installed_versions()
    return {p: recorded[p] if p in recorded else _version(p) for p in packages}


def relevant_packages(backend: str) -> tuple[str, ...]:
    """The packages whose versions decide vectors computed by ``backend``."""
    # ONNX Runtime fuses the graph it runs; for OpenVINO its version still names
    # the export folder (export_folder) and checks the graph int8 is made from
    graph = ("onnxruntime",) if runs_exported_graph(backend) else ()
    engine = ("openvino",) if on_openvino(backend) else ()
    calibrated = ("nncf",) if backend == runner("openvino", True) else ()
    return _ALWAYS + graph + engine + calibrated


def compute_stamp(backend: str, dtype: str) -> str:
    """How vectors are computed: backend, precision and library versions, and
    for ONNX the version of the export recipe that wrote the graph (for
    OpenVINO that of the graph it compiles too)."""
    versions = _versions_of(relevant_packages(backend))
    parts = [f"{name}={version}" for name, version in versions.items()]
    if runs_exported_graph(backend):
        parts.append(f"export={ONNX_EXPORT_VERSION}")
    if on_openvino(backend):
        parts.append(f"openvino-graph={OPENVINO_GRAPH_VERSION}")
    return "/".join([backend, dtype, *parts])


def warn_about_changes(
    recorded: dict[str, str | None],
    packages: Iterable[str],
    warning: Callable[[str, str | None, str | None], Warning],
) -> None:
    """Warn at the user's line, naming both versions, for each of ``packages``
    whose version differs from the one ``recorded`` (a pickle's, an artefact's)."""
    now = _versions_of(packages)
    for package, current in now.items():
        if package in recorded and recorded[package] != current:
            warnings.warn(
                warning(package, recorded[package], current),
                stacklevel=user_stacklevel(),
            )
