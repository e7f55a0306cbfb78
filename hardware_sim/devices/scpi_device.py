"""Shared machinery of the SCPI-speaking personalities (Hioki meters, Keithley SourceMeter)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable

from hardware_sim.clock import SimClock
from hardware_sim.devices.base import LinePersonality, Reply
from hardware_sim.scpi import Command, CommandTable, ScpiError, parse_line

Handler = Callable[[Command, float], "str | None"]

BUSY = (-200, "Execution error; instrument busy")


class ScpiPersonality(LinePersonality):
    """Runs each line's commands through a :class:`CommandTable`.

    Replies to the queries of one line are joined with ``;`` into one reply line, due when the
    slowest of them is done (handlers push ``self.due_s`` later for measurement time). A command
    that fails is recorded through :meth:`record_error` and produces no reply text. With ``busy``
    set (fault injection) every setting command is refused as an execution error and not applied.
    """

    def __init__(self, clock: SimClock, *, seed: int = 0) -> None:
        super().__init__(clock, seed=seed)
        self.table: CommandTable[Handler] = CommandTable()
        self.busy = False
        self.due_s = 0.0
        self.build_table()

    @abstractmethod
    def build_table(self) -> None:
        """Register ``pattern -> handler`` pairs on ``self.table``."""

    @abstractmethod
    def record_error(self, error: ScpiError) -> None:
        """Note a failed command the way the instrument does (ESR bits, error queue)."""

    def wait_until(self, t_s: float) -> None:
        """Hold this line's reply until simulated time ``t_s`` (measurement in progress)."""
        self.due_s = max(self.due_s, t_s)

    def handle_line(self, line: str, now_s: float) -> list[Reply]:
        self.due_s = now_s
        outputs: list[str] = []
        for command in parse_line(line):
            try:
                if self.busy and not command.query and not command.header.startswith("*"):
                    raise ScpiError(*BUSY)
                handler = self.table.lookup(command.header)
                result = handler(command, now_s)
            except ScpiError as error:
                self.record_error(error)
                continue
            if result is not None:
                outputs.append(result)
        if not outputs:
            return []
        return [self.line_reply(";".join(outputs), self.due_s)]

    def on_bad_input(self, now_s: float) -> Iterable[Reply]:
        self.record_error(ScpiError(-101, "Invalid character"))
        return ()
