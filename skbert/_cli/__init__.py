"""The ``skbert`` command line: ``embed``, ``info``, ``export`` and ``demo``.

The console script calls :func:`main`; each command's options and run live in
a module of its own.
"""

from .commands import main

__all__ = ["main"]
