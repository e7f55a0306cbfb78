"""A scripted transport for expected-protocol tests: exact request bytes in, canned replies out."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from drivers.neware_bts import TERMINATOR

HEAD = '<?xml version="1.0" encoding="UTF-8" ?>\n<bts version="1.0">'


def request(body: str) -> bytes:
    """The exact bytes the driver must put on the wire for ``body``."""
    return (HEAD + body + "</bts>" + TERMINATOR).encode("utf-8")


def reply(*lines: str) -> str:
    """A reply laid out like the BTS 8.0 capture (terminator stripped, as the transport does)."""
    inner = "".join(f"  {line}\r\n" for line in lines)
    return f'<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n{inner}</bts>'


@dataclass
class ScriptedTransport:
    script: list[tuple[bytes, str | Exception]]
    lock: threading.RLock = field(default_factory=threading.RLock)
    reopened: int = 0
    _pending: list[str | Exception] = field(default_factory=list)

    def write(self, text: str) -> None:
        assert self.script, f"unexpected request {text!r}"
        expected, answer = self.script.pop(0)
        assert (text + TERMINATOR).encode("utf-8") == expected
        self._pending.append(answer)

    def read(self, *, timeout_s: float | None = None) -> str:
        answer = self._pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def reopen(self) -> None:
        self.reopened += 1
        self._pending.clear()

    def close(self) -> None:
        pass

    def done(self) -> bool:
        return not self.script and not self._pending
