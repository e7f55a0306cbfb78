"""``python -m station`` is the same as the ``station`` command."""

from __future__ import annotations

from station.cli.main import main

raise SystemExit(main())
