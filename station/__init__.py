"""Battery cell testing and grading station: the domain core (no Qt, no serial/VISA code)."""

from __future__ import annotations

__version__ = "0.1.0"
