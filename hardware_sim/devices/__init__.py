"""Instrument personalities: pure bytes-in -> bytes-out state machines (see ``base``)."""

from __future__ import annotations
