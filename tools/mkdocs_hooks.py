"""MkDocs hooks for the skbert site (``hooks:`` in ``mkdocs.yml``).

Pages that are still being written may be listed under ``extra.pending_pages``
in ``mkdocs.yml``: while such a file does not exist, its navigation entry is
left out (with an info message) instead of failing ``mkdocs build --strict``.
Any other missing page still fails the build.

Docstrings link with mkdocstrings' syntax,
``[`transform`][skbert.BertCLSVectorizer.transform]``, which mkdocs-autorefs
resolves (an unknown target is a warning, so ``--strict`` fails). A Sphinx
role (``:class:`~skbert.TruncationWarning```) is not a link here: it would show
as raw text, so a rendered page that contains one is a warning too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.skbert")

#: A Sphinx cross-reference role as it looks once Markdown has rendered it.
SPHINX_ROLE = re.compile(
    r"(:(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj|const|ref):)(?:<code>|`)"
    r"([^<`]*)"
)


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


def sphinx_roles(html: str) -> list[str]:
    """The raw Sphinx roles in rendered ``html`` (empty when there are none)."""
    return [f"{role}`{target}`" for role, target in SPHINX_ROLE.findall(html)]


def on_page_content(html, page, **kwargs):
    for role in sphinx_roles(html):
        log.warning(
            "skbert: %s shows the Sphinx role %r as raw text; link with "
            "[`name`][skbert.name] (mkdocstrings/autorefs syntax) instead",
            page.file.src_uri,
            role,
        )
    return html
