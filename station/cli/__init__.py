"""The headless command line (``station ...``). Each command lives in its own module."""

from __future__ import annotations
