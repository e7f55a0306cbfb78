"""``python -m ui`` opens the bench GUI (``station gui`` runs this in its own process)."""

from __future__ import annotations

from ui.launch import main

raise SystemExit(main())
