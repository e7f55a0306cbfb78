"""Transports that serve a personality: TCP, pty and the in-process pyserial handler."""

from __future__ import annotations
