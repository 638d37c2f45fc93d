"""``python -m skbert``: the same command line as ``skbert``."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
