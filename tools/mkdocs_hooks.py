"""MkDocs hooks for the skbert site (``hooks:`` in ``mkdocs.yml``).

Pages that are still being written may be listed under ``extra.pending_pages``
in ``mkdocs.yml``: while such a file does not exist, its navigation entry is
left out (with an info message) instead of failing ``mkdocs build --strict``.
Any other missing page still fails the build.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.skbert")


def _without_missing(nav: list, docs_dir: Path, pending: set[str]) -> list:
    kept = []
    for entry in nav:
        if isinstance(entry, dict):
            (title, target), *_ = entry.items()
            if isinstance(target, list):
                kept.append({title: _without_missing(target, docs_dir, pending)})
                continue
            if target in pending and not (docs_dir / target).is_file():
                log.info("skbert: %s is not written yet; left out of the nav", target)
                continue
        kept.append(entry)
    return kept


def on_config(config, **kwargs):
    pending = set(config.extra.get("pending_pages") or [])
    if pending and config.nav:
        config.nav = _without_missing(config.nav, Path(config.docs_dir), pending)
    return config
