"""Prompt sources, one module per domain, found by name in one literal table (``SOURCES``).

A source module has ``find(listings, config) -> Found``: the files of its domain (from the shared
``base.Listings``) and how to read prompt candidates from each. Adding a domain is one module
here and one line in ``SOURCES``; ``logging_data.prompts`` samples, splits and writes them.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import DpkgIndex, Listings, SourceRoots, Found

SOURCES: dict[str, str] = {
    "code": "logging_data.prompt_sources.code:find",
    "translate": "logging_data.prompt_sources.translate:find",
    "summarize": "logging_data.prompt_sources.summarize:find",
    "questions": "logging_data.prompt_sources.questions:find",
}


def find_sources(domain: str, roots: SourceRoots, config: Any, dpkg: DpkgIndex | None = None,
                 cache: dict | None = None) -> Found:
    """The source files of ``domain`` that exist under ``roots``, and how to read them.

    ``cache`` (a dict owned by the caller) keeps folder listings between domains of one build.
    """
    if domain not in SOURCES:
        raise ValueError(f"unknown domain {domain!r}; known: {', '.join(SOURCES)}")
    module, attr = SOURCES[domain].split(":")
    find = getattr(importlib.import_module(module), attr)
    return find(Listings(roots, dpkg or DpkgIndex(roots.dpkg_dir), cache), config)
