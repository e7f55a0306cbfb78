"""The technician's bench GUI (PySide6 + pyqtgraph): a thin layer over the station engine.

Importing this package does not import Qt; :mod:`ui.app` does.
"""

from __future__ import annotations
