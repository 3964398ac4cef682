"""MkDocs hooks (``mkdocs.yml``: ``hooks``): our docstrings cross-reference in Sphinx roles (``:class:`EnvState```),
which Markdown renders as the role's name before a code span; the page shows the code span alone."""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(?=<code>)")


def on_page_content(html: str, **kwargs) -> str:
    """Drop the role prefixes of Sphinx cross-references from a rendered page."""
    return ROLE.sub("", html)
