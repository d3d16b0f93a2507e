"""The ``countersign`` command line: it translates arguments into use-case calls, nothing more.

One module per area (``setup``, ``generate``, ``documents``, ``audit``, ``service``), each
command a one-to-one mirror of a use case, importing what it needs only when it runs, so
``countersign --help`` stays fast. ``python -m pipeline.cli.docs`` writes docs/CLI.md.
"""

from __future__ import annotations

from pipeline.cli.main import main

__all__ = ["main"]
