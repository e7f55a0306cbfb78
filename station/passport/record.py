"""The station's own grading record: one per cell and test, every value keyed by its DIN clause.

DIN DKE SPEC 99100 §6.7.1 asks for date, originator, measurement uncertainty and test method with
every value; none of the exchange models can carry that (shared/reference/passport.md §0), so this
record is the complete one and every export is derived from it.

A value is keyed by its DIN DKE SPEC 99100 clause plus an optional qualifier (``soc=20``,
``component=cell``, ``method=dcir``) where one clause holds several points. The present ohmic
resistance has no sub-clause of its own in DIN (only the increase, 6.7.5.3), so it is keyed by the
section ``6.7.5``; the capacity-based SoH %, which is not a regulatory attribute (passport.md §0.6),
is keyed ``x-station.soh-capacity``.

Values the bench cannot measure (cycle count, throughput, time at extreme temperature, negative
events, accidents) come from :func:`read_bms_readout` or :func:`read_earlier_passport` and carry
their source.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from station.passport.canonical import canonical_bytes

RECORD_FORMAT = "station-grading-record/1"


class RecordError(ValueError):
    """A record that cannot be built or read; the message names the key and the problem."""


class Source(enum.Enum):
    """Where a value came from (DIN 99100 §6.7.1 asks for the originator of every value)."""

    MEASURED = "measured"
    BMS = "bms_readout"
    DATASHEET = "datasheet"
    EARLIER_PASSPORT = "earlier_passport"
    DERIVED = "derived"


class BatteryStatus(enum.Enum):
    """Battery status per Regulation (EU) 2023/1542 Annex XIII 4(c), DIN 99100 6.1.3.7."""

    ORIGINAL = "original"
    REPURPOSED = "repurposed"
    REUSED = "re-used"
    REMANUFACTURED = "remanufactured"
    WASTE = "waste"

    @property
    def needs_original_link(self) -> bool:
        """Art. 77: a battery placed on the market again gets a new passport linked to the old."""
        return self in (
            BatteryStatus.REPURPOSED,
            BatteryStatus.REUSED,
            BatteryStatus.REMANUFACTURED,
        )


@dataclass(frozen=True)
class ClauseInfo:
    """What a clause holds: its name, the unit the record stores it in, and its value kind."""

    name: str
    unit: str
    kind: str = "number"  # number | integer | text_list


CLAUSES: Mapping[str, ClauseInfo] = {
    "6.1.3.6": ClauseInfo("battery mass", "kg"),
    "6.7.2.2": ClauseInfo("rated capacity", "Ah"),
    "6.7.2.3": ClauseInfo("remaining capacity", "Ah"),
    "6.7.2.4": ClauseInfo("capacity fade", "%"),
    "6.7.2.5": ClauseInfo("certified usable battery energy", "kWh"),
    "6.7.2.6": ClauseInfo("remaining usable battery energy", "kWh"),
    "6.7.2.7": ClauseInfo("state of certified energy", "%"),
    "6.7.2.8": ClauseInfo("state of charge", "%"),
    "6.7.2.9": ClauseInfo("minimum voltage", "V"),
    "6.7.2.10": ClauseInfo("maximum voltage", "V"),
    "6.7.2.11": ClauseInfo("nominal voltage", "V"),
    "6.7.3.2": ClauseInfo("original power capability", "W"),
    "6.7.3.3": ClauseInfo("remaining power capability", "W"),
    "6.7.3.4": ClauseInfo("power fade", "%"),
    "6.7.3.5": ClauseInfo("maximum permitted battery power", "W"),
    "6.7.3.6": ClauseInfo("ratio nominal battery power to battery energy", "W/Wh"),
    "6.7.4.2": ClauseInfo("initial round-trip energy efficiency", "%"),
    "6.7.4.3": ClauseInfo("round-trip energy efficiency at 50 % of cycle life", "%"),
    "6.7.4.4": ClauseInfo("remaining round-trip energy efficiency", "%"),
    "6.7.4.5": ClauseInfo("round-trip energy efficiency fade", "%"),
    "6.7.4.6": ClauseInfo("initial self-discharging rate", "%/month"),
    "6.7.4.7": ClauseInfo("current self-discharging rate", "%/month"),
    "6.7.4.8": ClauseInfo("evolution of self-discharge", "%"),
    "6.7.5": ClauseInfo("internal (ohmic) resistance", "Ohm"),
    "6.7.5.2": ClauseInfo("initial internal resistance", "Ohm"),
    "6.7.5.3": ClauseInfo("internal resistance increase", "%"),
    "6.7.6.2": ClauseInfo("expected lifetime in calendar years", "years"),
    "6.7.6.3": ClauseInfo("expected number of cycles", "1", "integer"),
    "6.7.6.4": ClauseInfo("number of full cycles", "1", "integer"),
    "6.7.6.5": ClauseInfo("cycle-life reference test", "document ids", "text_list"),
    "6.7.6.6": ClauseInfo("C-rate of the relevant cycle-life test", "1/h"),
    "6.7.6.7": ClauseInfo("energy throughput", "kWh"),
    "6.7.6.8": ClauseInfo("capacity throughput", "Ah"),
    "6.7.6.9": ClauseInfo("capacity threshold for exhaustion", "%"),
    "6.7.7.2": ClauseInfo("temperature information", "degC"),
    "6.7.7.3": ClauseInfo("idle state temperature range, lower boundary", "degC"),
    "6.7.7.4": ClauseInfo("idle state temperature range, upper boundary", "degC"),
    "6.7.7.5": ClauseInfo("time spent in extreme temperatures above boundary", "min"),
    "6.7.7.6": ClauseInfo("time spent in extreme temperatures below boundary", "min"),
    "6.7.7.7": ClauseInfo("time spent charging during extreme temperatures above boundary", "min"),
    "6.7.7.8": ClauseInfo("time spent charging during extreme temperatures below boundary", "min"),
    "6.7.8.2": ClauseInfo("number of deep discharge events", "1", "integer"),
    "6.7.8.3": ClauseInfo("number of overcharge events", "1", "integer"),
    "6.7.8.4": ClauseInfo("information on accidents", "document ids", "text_list"),
    "6.7.8.5": ClauseInfo("negative events", "text", "text_list"),
    "x-station.soh-capacity": ClauseInfo("state of health by capacity (not regulatory)", "%"),
}
"""The clauses the station records. 6.7.8.5 is this record's key for free-text negative events
(DIN groups them under 6.7.8); only the counts have their own sub-clauses."""


def new_passport_id() -> str:
    """A fresh passport identifier (a URN UUID), e.g. for a repurposed cell's new passport."""
    return f"urn:uuid:{uuid.uuid4()}"


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; naive datetimes are refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise RecordError(f"timestamp {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and whole microseconds dropped when zero."""
    text = utc(moment).isoformat()
    return text.replace("+00:00", "Z")


def parse_utc(text: str, *, key: str, naive_is_utc: bool = False) -> datetime:
    """Parse an ISO 8601 timestamp; one without a zone is refused unless ``naive_is_utc``."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as error:
        raise RecordError(f"{key}: {text!r} is not an ISO 8601 timestamp") from error
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise RecordError(f"{key}: {text!r} has no time zone")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Conditions:
    """Test conditions of a value (``None`` = not applicable). Temperature in degC, C-rate in 1/h
    (magnitude), SoC in %, pulse length and rest before the measurement in s."""

    temperature_c: float | None = None
    c_rate: float | None = None
    soc_pct: float | None = None
    pulse_length_s: float | None = None
    rest_s: float | None = None


@dataclass(frozen=True)
class Instrument:
    """An instrument that produced measured values, with its calibration state on the test date.

    ``key`` is how values refer to it (e.g. ``"cycler"``); ``calibration_due`` is the date the
    current calibration expires.
    """

    key: str
    make: str
    model: str
    serial: str
    firmware: str
    calibration_certificate: str = ""
    calibration_due: date | None = None
    simulated: bool = False

    def calibration_state(self, on: date) -> str:
        """``valid``, ``overdue`` or ``unknown`` on the date ``on``."""
        if self.calibration_due is None:
            return "unknown"
        return "valid" if on <= self.calibration_due else "overdue"

    def describe(self) -> str:
        tag = " [SIMULATED]" if self.simulated else ""
        return f"{self.make} {self.model} s/n {self.serial}{tag}"


@dataclass(frozen=True)
class PassportValue:
    """One value of the record, with everything DIN 99100 §6.7.1 asks for.

    ``value`` is in ``unit`` (the clause's unit). ``uncertainty`` is the standard uncertainty
    (k = 1, as ``station.grading`` figures carry it) in the same unit, ``None`` when the source
    does not state one; reports print the expanded uncertainty U = 2u. ``origin`` identifies
    the document a non-measured value came from (BMS read-out id, earlier passport id, datasheet).
    """

    clause: str
    value: float | int | tuple[str, ...]
    unit: str
    source: Source
    observed_at: datetime
    method: str = ""
    qualifier: str = ""
    conditions: Conditions = field(default_factory=Conditions)
    uncertainty: float | None = None
    instrument: str = ""
    origin: str = ""

    @property
    def key(self) -> str:
        return f"{self.clause}#{self.qualifier}" if self.qualifier else self.clause

    @property
    def name(self) -> str:
        return CLAUSES[self.clause].name


@dataclass(frozen=True)
class CellIdentity:
    """Identity of the cell as far as the nameplate models need it (mostly from the label,
    the supplier or the earlier passport). ``passport_id`` is the URI of this passport;
    ``component`` is what was graded (cell, module or pack); ``warranty_period`` an ISO 8601
    duration; ``markings`` pairs of (marking name, marking file URI)."""

    passport_id: str
    serial_number: str
    manufacturer_name: str
    manufacturer_identifier: str
    model: str
    chemistry: str = ""
    category: str = "industrial"
    date_of_manufacture: date | None = None
    date_of_putting_into_service: date | None = None
    facility_identifier: str = ""
    address_street: str = ""
    address_zip: str = ""
    address_city: str = ""
    address_country: str = ""
    component: str = "cell"
    warranty_period: str = ""
    markings: tuple[tuple[str, str], ...] = ()
    declarations_of_conformity: tuple[str, ...] = ()
    compliance_test_reports: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradeOutcome:
    """The grading decision: grade, bin (``station.grading`` ``Grade.outcome``: a bin name,
    ``REJECT``, ``QUARANTINE`` or ``RETEST``), the reasons in plain words, and the profile used."""

    grade: str
    bin: str
    reasons: tuple[str, ...]
    profile_name: str
    profile_version: str
    profile_sha256: str = ""


@dataclass(frozen=True)
class GradingRecord:
    """The complete record of one cell and one test. Build it with :class:`RecordBuilder`."""

    record_id: str
    test_id: str
    cell: CellIdentity
    status: BatteryStatus
    original_passport_id: str | None
    grade: GradeOutcome
    operator: str
    station_id: str
    started_at: datetime
    finished_at: datetime
    raw_data_sha256: str
    instruments: tuple[Instrument, ...]
    values: tuple[PassportValue, ...]
    software_version: str = ""

    def get(self, key: str) -> PassportValue | None:
        for value in self.values:
            if value.key == key:
                return value
        return None

    def require(self, key: str) -> PassportValue:
        value = self.get(key)
        if value is None:
            raise RecordError(
                f"record {self.record_id}: no value for {key} ({CLAUSES[key.split('#')[0]].name})"
            )
        return value

    def number(self, key: str) -> float:
        value = self.require(key).value
        if isinstance(value, tuple):
            raise RecordError(f"record {self.record_id}: {key} is not a number")
        return float(value)

    def instrument(self, key: str) -> Instrument | None:
        for instrument in self.instruments:
            if instrument.key == key:
                return instrument
        return None

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)

    def canonical(self) -> bytes:
        """Byte-identical for the same record (reliability.md P2)."""
        return canonical_bytes(record_to_dict(self))


class FigureLike(Protocol):
    """A computed figure as ``station.grading.results.Figure`` has it (value, unit, standard
    uncertainty); NaN means it could not be computed."""

    value: float
    unit: str
    uncertainty: float | None


GRADING_METRICS: Mapping[str, tuple[str, str, float]] = {
    # grading metric name: (record key, grading unit, factor to the record's unit)
    "capacity_ah": ("6.7.2.3", "Ah", 1.0),
    "energy_wh": ("6.7.2.6", "Wh", 1e-3),
    "rte": ("6.7.4.4", "1", 100.0),
    "dcir_10s_ohm": ("6.7.5#method=dcir", "ohm", 1.0),
    "acir_ohm": ("6.7.5#method=acir_1khz", "ohm", 1.0),
    "self_discharge_pct_per_month": ("6.7.4.7", "%/month", 1.0),
}
"""How figures of ``station.grading`` (``METRIC_UNITS`` names) land in the record. Fades and the
capacity SoH are derived here from the same inputs (:meth:`RecordBuilder.derive_fades`), so
the two packages cannot disagree silently: the recomputation check compares them."""


def _check_number(key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{key}: {value!r} is not a number")
    if not math.isfinite(value):
        raise RecordError(f"{key}: {value} is not a finite number")
    return value


class RecordBuilder:
    """Collects plain values into a :class:`GradingRecord`; checks each as it is added.

    The grading and engine packages produce the inputs; this class only needs plain numbers,
    strings and tz-aware datetimes, so it does not import them.
    """

    def __init__(
        self,
        *,
        record_id: str,
        test_id: str,
        cell: CellIdentity,
        grade: GradeOutcome,
        operator: str,
        station_id: str,
        started_at: datetime,
        finished_at: datetime,
        raw_data_sha256: str,
        status: BatteryStatus = BatteryStatus.ORIGINAL,
        original_passport_id: str | None = None,
        software_version: str = "",
    ) -> None:
        for key, text in (
            ("record_id", record_id),
            ("test_id", test_id),
            ("operator", operator),
            ("station_id", station_id),
            ("cell.passport_id", cell.passport_id),
            ("cell.serial_number", cell.serial_number),
        ):
            if not text.strip():
                raise RecordError(f"{key} is empty")
        if len(raw_data_sha256) != 64 or any(c not in "0123456789abcdef" for c in raw_data_sha256):
            raise RecordError(f"raw_data_sha256: {raw_data_sha256!r} is not a SHA-256 hex digest")
        if utc(finished_at) < utc(started_at):
            raise RecordError("finished_at is before started_at")
        self._head = {
            "record_id": record_id,
            "test_id": test_id,
            "cell": cell,
            "grade": grade,
            "operator": operator,
            "station_id": station_id,
            "started_at": utc(started_at),
            "finished_at": utc(finished_at),
            "raw_data_sha256": raw_data_sha256,
            "status": status,
            "original_passport_id": original_passport_id,
            "software_version": software_version,
        }
        self._instruments: dict[str, Instrument] = {}
        self._values: dict[str, PassportValue] = {}

    def instrument(self, instrument: Instrument) -> RecordBuilder:
        if instrument.key in self._instruments:
            raise RecordError(f"instrument {instrument.key!r} added twice")
        self._instruments[instrument.key] = instrument
        return self

    def add(self, value: PassportValue) -> RecordBuilder:
        if value.clause not in CLAUSES:
            raise RecordError(f"{value.key}: unknown clause {value.clause!r}")
        info = CLAUSES[value.clause]
        if value.unit != info.unit:
            raise RecordError(f"{value.key}: unit {value.unit!r}, the record keeps {info.unit!r}")
        if info.kind == "text_list":
            if not isinstance(value.value, tuple) or not all(
                isinstance(item, str) for item in value.value
            ):
                raise RecordError(f"{value.key}: expected a list of texts, got {value.value!r}")
        elif info.kind == "integer":
            if isinstance(value.value, bool) or not isinstance(value.value, int):
                raise RecordError(f"{value.key}: expected an integer, got {value.value!r}")
            if value.value < 0:
                raise RecordError(f"{value.key}: count {value.value} is negative")
        else:
            _check_number(value.key, value.value)  # type: ignore[arg-type]
        if value.uncertainty is not None:
            _check_number(f"{value.key}.uncertainty", value.uncertainty)
            if value.uncertainty < 0:
                raise RecordError(f"{value.key}: uncertainty {value.uncertainty} is negative")
        if value.source is Source.MEASURED and not value.instrument:
            raise RecordError(f"{value.key}: a measured value names its instrument")
        if value.instrument and value.instrument not in self._instruments:
            raise RecordError(f"{value.key}: instrument {value.instrument!r} was not added")
        if value.source in (Source.BMS, Source.EARLIER_PASSPORT) and not value.origin:
            raise RecordError(f"{value.key}: an imported value names its origin document")
        if value.key in self._values:
            raise RecordError(f"{value.key}: value given twice")
        self._values[value.key] = replace(value, observed_at=utc(value.observed_at))
        return self

    def _add_clause_value(
        self,
        clause: str,
        value: float,
        source: Source,
        *,
        observed_at: datetime,
        conditions: Conditions | None,
        **fields: Any,
    ) -> RecordBuilder:
        """Add a value whose unit is the one its DIN clause fixes."""
        return self.add(
            PassportValue(
                clause=clause,
                value=value,
                unit=CLAUSES[clause].unit if clause in CLAUSES else "",
                source=source,
                observed_at=observed_at,
                conditions=conditions or Conditions(),
                **fields,
            )
        )

    def measured(
        self,
        clause: str,
        value: float,
        *,
        instrument: str,
        method: str,
        observed_at: datetime,
        uncertainty: float | None,
        conditions: Conditions | None = None,
        qualifier: str = "",
    ) -> RecordBuilder:
        return self._add_clause_value(
            clause,
            value,
            Source.MEASURED,
            observed_at=observed_at,
            conditions=conditions,
            method=method,
            qualifier=qualifier,
            uncertainty=uncertainty,
            instrument=instrument,
        )

    def measured_figure(
        self,
        metric: str,
        figure: FigureLike,
        *,
        instrument: str,
        method: str,
        observed_at: datetime,
        conditions: Conditions | None = None,
    ) -> RecordBuilder:
        """Add a grading figure by its metric name (see :data:`GRADING_METRICS`)."""
        if metric not in GRADING_METRICS:
            raise RecordError(f"metric {metric!r}: no DIN clause mapped for it")
        key, unit, factor = GRADING_METRICS[metric]
        if figure.unit.lower() != unit.lower():
            raise RecordError(f"metric {metric!r}: unit {figure.unit!r}, expected {unit!r}")
        if not math.isfinite(figure.value):
            raise RecordError(f"metric {metric!r}: value is {figure.value} (not computed)")
        clause, _, qualifier = key.partition("#")
        return self.measured(
            clause,
            figure.value * factor,
            instrument=instrument,
            method=method,
            observed_at=observed_at,
            uncertainty=None if figure.uncertainty is None else figure.uncertainty * factor,
            conditions=conditions,
            qualifier=qualifier,
        )

    def datasheet(
        self,
        clause: str,
        value: float,
        *,
        origin: str,
        observed_at: datetime,
        qualifier: str = "",
        conditions: Conditions | None = None,
        method: str = "",
    ) -> RecordBuilder:
        return self._add_clause_value(
            clause,
            value,
            Source.DATASHEET,
            observed_at=observed_at,
            conditions=conditions,
            qualifier=qualifier,
            origin=origin,
            method=method,
        )

    def imported(self, values: Iterable[PassportValue]) -> RecordBuilder:
        for value in values:
            self.add(value)
        return self

    def has(self, key: str) -> bool:
        """Whether the record already holds a value under ``key`` (clause[#qualifier])."""
        return key in self._values

    def derive(
        self,
        clause: str,
        value: float,
        *,
        method: str,
        observed_at: datetime,
        uncertainty: float | None = None,
        qualifier: str = "",
        conditions: Conditions | None = None,
    ) -> RecordBuilder:
        return self._add_clause_value(
            clause,
            value,
            Source.DERIVED,
            observed_at=observed_at,
            conditions=conditions,
            method=method,
            qualifier=qualifier,
            uncertainty=uncertainty,
        )

    def derive_fades(self) -> RecordBuilder:
        """Add the fade and increase figures (6.7.2.4, 6.7.3.4, 6.7.4.5, 6.7.4.8, 6.7.5.3 and the
        capacity SoH) wherever both the present value and its BOL reference are in the record.

        Formulas per passport.md §3 (DIN's printed "(1 - C(x))/C_BOL" is read as
        (1 - C(x)/C_BOL)·100). Uncertainty is propagated from the present value only, because
        datasheet references state none.
        """
        pairs = (
            ("6.7.2.4", "6.7.2.3", "6.7.2.2", "fade", "capacity fade = (1 - C_rem/C_rated)*100"),
            ("6.7.4.5", "6.7.4.4", "6.7.4.2", "fade", "RTE fade = (1 - RTE/RTE_BOL)*100"),
            (
                "6.7.4.8",
                "6.7.4.7",
                "6.7.4.6",
                "increase",
                "evolution = (SDR_now - SDR_BOL)/SDR_BOL*100",
            ),
        )
        for target, present_key, reference_key, kind, method in pairs:
            self._derive_pair(target, "", present_key, reference_key, kind, method)
        for key in list(self._values):
            clause, _, qualifier = key.partition("#")
            if clause == "6.7.3.3":
                self._derive_pair(
                    "6.7.3.4",
                    qualifier,
                    key,
                    f"6.7.3.2#{qualifier}" if qualifier else "6.7.3.2",
                    "fade",
                    "power fade = (1 - P/P_BOL)*100 at the same SoC and pulse length",
                )
            if clause == "6.7.5" and qualifier.startswith("method="):
                method_name = qualifier.split("=", 1)[1]
                self._derive_pair(
                    "6.7.5.3",
                    qualifier,
                    key,
                    f"6.7.5.2#{qualifier}",
                    "increase",
                    f"resistance increase = (R - R_BOL)/R_BOL*100, {method_name}",
                )
        self._derive_pair(
            "x-station.soh-capacity",
            "",
            "6.7.2.3",
            "6.7.2.2",
            "ratio",
            "SoH = C_rem/C_rated*100 (station figure, not the regulatory SoH)",
        )
        return self

    def _derive_pair(
        self,
        target: str,
        qualifier: str,
        present_key: str,
        reference_key: str,
        kind: str,
        method: str,
    ) -> None:
        present = self._values.get(present_key)
        reference = self._values.get(reference_key)
        key = f"{target}#{qualifier}" if qualifier else target
        if present is None or reference is None or key in self._values:
            return
        p = float(present.value)  # type: ignore[arg-type]
        r = float(reference.value)  # type: ignore[arg-type]
        if r == 0:
            raise RecordError(f"{reference_key}: reference value is zero, {target} undefined")
        if kind == "fade":
            result = (1.0 - p / r) * 100.0
        elif kind == "increase":
            result = (p - r) / r * 100.0
        else:
            result = p / r * 100.0
        uncertainty = None if present.uncertainty is None else present.uncertainty / abs(r) * 100
        self.derive(
            target,
            result,
            method=method,
            observed_at=present.observed_at,
            uncertainty=uncertainty,
            qualifier=qualifier,
            conditions=present.conditions,
        )

    def build(self) -> GradingRecord:
        status: BatteryStatus = self._head["status"]  # type: ignore[assignment]
        original = self._head["original_passport_id"]
        if status.needs_original_link and not original:
            raise RecordError(
                f"status {status.value!r} needs original_passport_id (Art. 77: the new passport "
                "is linked to the original one)"
            )
        cell: CellIdentity = self._head["cell"]  # type: ignore[assignment]
        if original and original == cell.passport_id:
            raise RecordError("original_passport_id equals this passport's id; issue a new id")
        values = tuple(sorted(self._values.values(), key=lambda v: v.key))
        return GradingRecord(
            instruments=tuple(sorted(self._instruments.values(), key=lambda i: i.key)),
            values=values,
            **self._head,  # type: ignore[arg-type]
        )


def _date_or_none(moment: date | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _conditions_dict(conditions: Conditions) -> dict[str, float]:
    return {
        name: getattr(conditions, name)
        for name in ("temperature_c", "c_rate", "soc_pct", "pulse_length_s", "rest_s")
        if getattr(conditions, name) is not None
    }


def record_to_dict(record: GradingRecord) -> dict[str, Any]:
    """The JSON form of a record (canonicalise with :func:`canonical_bytes`)."""
    test_day = record.started_at.date()
    cell = record.cell
    return {
        "format": RECORD_FORMAT,
        "record_id": record.record_id,
        "test_id": record.test_id,
        "cell": {
            "passport_id": cell.passport_id,
            "serial_number": cell.serial_number,
            "manufacturer_name": cell.manufacturer_name,
            "manufacturer_identifier": cell.manufacturer_identifier,
            "model": cell.model,
            "chemistry": cell.chemistry,
            "category": cell.category,
            "component": cell.component,
            "date_of_manufacture": _date_or_none(cell.date_of_manufacture),
            "date_of_putting_into_service": _date_or_none(cell.date_of_putting_into_service),
            "facility_identifier": cell.facility_identifier,
            "warranty_period": cell.warranty_period,
            "markings": [list(m) for m in cell.markings],
            "declarations_of_conformity": list(cell.declarations_of_conformity),
            "compliance_test_reports": list(cell.compliance_test_reports),
            "address": {
                "street": cell.address_street,
                "zip": cell.address_zip,
                "city": cell.address_city,
                "country": cell.address_country,
            },
        },
        "status": record.status.value,
        "original_passport_id": record.original_passport_id,
        "grade": {
            "grade": record.grade.grade,
            "bin": record.grade.bin,
            "reasons": list(record.grade.reasons),
            "profile_name": record.grade.profile_name,
            "profile_version": record.grade.profile_version,
            "profile_sha256": record.grade.profile_sha256,
        },
        "operator": record.operator,
        "station_id": record.station_id,
        "software_version": record.software_version,
        "started_at": format_utc(record.started_at),
        "finished_at": format_utc(record.finished_at),
        "raw_data_sha256": record.raw_data_sha256,
        "instruments": [
            {
                "key": i.key,
                "make": i.make,
                "model": i.model,
                "serial": i.serial,
                "firmware": i.firmware,
                "simulated": i.simulated,
                "calibration_certificate": i.calibration_certificate,
                "calibration_due": _date_or_none(i.calibration_due),
                "calibration_state": i.calibration_state(test_day),
            }
            for i in record.instruments
        ],
        "values": {
            v.key: {
                "clause": v.clause,
                "name": v.name,
                "qualifier": v.qualifier,
                "value": list(v.value) if isinstance(v.value, tuple) else v.value,
                "unit": v.unit,
                "source": v.source.value,
                "method": v.method,
                "conditions": _conditions_dict(v.conditions),
                "uncertainty": v.uncertainty,
                "instrument": v.instrument,
                "origin": v.origin,
                "observed_at": format_utc(v.observed_at),
            }
            for v in record.values
        },
    }


def _field(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise RecordError(f"{where}: missing key {key!r}")
    return data[key]


def _opt_date(text: str | None, key: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError) as error:
        raise RecordError(f"{key}: {text!r} is not an ISO date") from error


def record_from_dict(data: Mapping[str, Any]) -> GradingRecord:
    """Read a record written by :func:`record_to_dict`; checks it as the builder does."""
    if _field(data, "format", "record") != RECORD_FORMAT:
        raise RecordError(f"record: format {data['format']!r}, expected {RECORD_FORMAT!r}")
    c = _field(data, "cell", "record")
    address = _field(c, "address", "cell")
    cell = CellIdentity(
        passport_id=_field(c, "passport_id", "cell"),
        serial_number=_field(c, "serial_number", "cell"),
        manufacturer_name=_field(c, "manufacturer_name", "cell"),
        manufacturer_identifier=_field(c, "manufacturer_identifier", "cell"),
        model=_field(c, "model", "cell"),
        chemistry=_field(c, "chemistry", "cell"),
        category=_field(c, "category", "cell"),
        component=_field(c, "component", "cell"),
        date_of_manufacture=_opt_date(c.get("date_of_manufacture"), "cell.date_of_manufacture"),
        date_of_putting_into_service=_opt_date(
            c.get("date_of_putting_into_service"), "cell.date_of_putting_into_service"
        ),
        facility_identifier=_field(c, "facility_identifier", "cell"),
        address_street=_field(address, "street", "cell.address"),
        address_zip=_field(address, "zip", "cell.address"),
        address_city=_field(address, "city", "cell.address"),
        address_country=_field(address, "country", "cell.address"),
        warranty_period=_field(c, "warranty_period", "cell"),
        markings=tuple((str(m[0]), str(m[1])) for m in _field(c, "markings", "cell")),
        declarations_of_conformity=tuple(_field(c, "declarations_of_conformity", "cell")),
        compliance_test_reports=tuple(_field(c, "compliance_test_reports", "cell")),
    )
    g = _field(data, "grade", "record")
    grade = GradeOutcome(
        grade=_field(g, "grade", "grade"),
        bin=_field(g, "bin", "grade"),
        reasons=tuple(_field(g, "reasons", "grade")),
        profile_name=_field(g, "profile_name", "grade"),
        profile_version=_field(g, "profile_version", "grade"),
        profile_sha256=_field(g, "profile_sha256", "grade"),
    )
    try:
        status = BatteryStatus(_field(data, "status", "record"))
    except ValueError as error:
        raise RecordError(f"status: {data['status']!r} is not a battery status") from error
    builder = RecordBuilder(
        record_id=_field(data, "record_id", "record"),
        test_id=_field(data, "test_id", "record"),
        cell=cell,
        grade=grade,
        operator=_field(data, "operator", "record"),
        station_id=_field(data, "station_id", "record"),
        started_at=parse_utc(_field(data, "started_at", "record"), key="started_at"),
        finished_at=parse_utc(_field(data, "finished_at", "record"), key="finished_at"),
        raw_data_sha256=_field(data, "raw_data_sha256", "record"),
        status=status,
        original_passport_id=data.get("original_passport_id"),
        software_version=data.get("software_version", ""),
    )
    for index, i in enumerate(_field(data, "instruments", "record")):
        where = f"instruments[{index}]"
        builder.instrument(
            Instrument(
                key=_field(i, "key", where),
                make=_field(i, "make", where),
                model=_field(i, "model", where),
                serial=_field(i, "serial", where),
                firmware=_field(i, "firmware", where),
                calibration_certificate=_field(i, "calibration_certificate", where),
                calibration_due=_opt_date(i.get("calibration_due"), f"{where}.calibration_due"),
                simulated=bool(_field(i, "simulated", where)),
            )
        )
    for key, v in _field(data, "values", "record").items():
        where = f"values[{key!r}]"
        raw = _field(v, "value", where)
        try:
            source = Source(_field(v, "source", where))
        except ValueError as error:
            raise RecordError(f"{where}: unknown source {v['source']!r}") from error
        value = PassportValue(
            clause=_field(v, "clause", where),
            value=tuple(raw) if isinstance(raw, list) else raw,
            unit=_field(v, "unit", where),
            source=source,
            observed_at=parse_utc(_field(v, "observed_at", where), key=f"{where}.observed_at"),
            method=_field(v, "method", where),
            qualifier=_field(v, "qualifier", where),
            conditions=Conditions(**_field(v, "conditions", where)),
            uncertainty=_field(v, "uncertainty", where),
            instrument=_field(v, "instrument", where),
            origin=_field(v, "origin", where),
        )
        if value.key != key:
            raise RecordError(f"{where}: key does not match clause/qualifier {value.key!r}")
        builder.add(value)
    return builder.build()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _strict_json(text: str) -> Any:
    """``json.loads`` without NaN/Infinity. Raises ValueError (over-long integers included) or
    RecursionError (nesting deeper than the interpreter's stack)."""
    return json.loads(text, parse_constant=_refuse_constant)


def load_record(path: Path) -> GradingRecord:
    try:
        data = _strict_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise RecordError(f"{path}: cannot read a record: {error}") from error
    return record_from_dict(data)


# ---- imports of values the bench cannot measure ----------------------------------------------

BMS_FORMAT = "station-bms-readout/1"

_BMS_KEYS: Mapping[str, str] = {
    "number_of_full_cycles": "6.7.6.4",
    "energy_throughput_kwh": "6.7.6.7",
    "capacity_throughput_ah": "6.7.6.8",
    "time_extreme_high_temp_min": "6.7.7.5",
    "time_extreme_low_temp_min": "6.7.7.6",
    "time_extreme_high_temp_charging_min": "6.7.7.7",
    "time_extreme_low_temp_charging_min": "6.7.7.8",
    "deep_discharge_events": "6.7.8.2",
    "overcharge_events": "6.7.8.3",
    "information_on_accidents": "6.7.8.4",
    "negative_events": "6.7.8.5",
}


def _read_json(path: Path) -> Any:
    if path.stat().st_size > 10_000_000:
        raise RecordError(f"{path}: larger than 10 MB, refused")
    try:
        return _strict_json(path.read_text(encoding="utf-8-sig"))
    except RecursionError:
        raise RecordError(f"{path}: JSON nested too deeply, refused") from None
    except ValueError as error:
        raise RecordError(f"{path}: not valid UTF-8 JSON: {error}") from error


def _imported_value(
    clause: str, raw: Any, *, source: Source, origin: str, observed_at: datetime, where: str
) -> PassportValue:
    info = CLAUSES[clause]
    value: float | int | tuple[str, ...]
    if info.kind == "text_list":
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise RecordError(f"{where}: expected a list of texts, got {raw!r}")
        value = tuple(raw)
    elif info.kind == "integer":
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise RecordError(f"{where}: expected a non-negative integer, got {raw!r}")
        value = raw
    else:
        value = _check_number(where, raw)
    return PassportValue(
        clause=clause,
        value=value,
        unit=info.unit,
        source=source,
        observed_at=observed_at,
        method="BMS read-out (Art. 14)" if source is Source.BMS else "earlier passport",
        origin=origin,
    )


def read_bms_readout(path: Path) -> list[PassportValue]:
    """Values from a BMS read-out file (Art. 14 read access), marked ``source=bms_readout``.

    Format ``station-bms-readout/1``: ``{"format", "readout_id", "read_at" (ISO, tz-aware),
    "values": {<key>: value}}`` with keys from :data:`_BMS_KEYS` (units in the key names).
    Unknown keys are refused so a typo does not silently drop a value.
    """
    data = _read_json(path)
    where = str(path)
    if _field(data, "format", where) != BMS_FORMAT:
        raise RecordError(f"{where}: format {data['format']!r}, expected {BMS_FORMAT!r}")
    readout_id = _field(data, "readout_id", where)
    if not isinstance(readout_id, str) or not readout_id:
        raise RecordError(f"{where}: readout_id is empty")
    read_at = parse_utc(_field(data, "read_at", where), key=f"{where}: read_at")
    values = _field(data, "values", where)
    if not isinstance(values, dict):
        raise RecordError(f"{where}: values is not an object")
    unknown = sorted(set(values) - set(_BMS_KEYS))
    if unknown:
        raise RecordError(f"{where}: unknown value key(s) {', '.join(unknown)}")
    return [
        _imported_value(
            _BMS_KEYS[key],
            raw,
            source=Source.BMS,
            origin=f"bms-readout:{readout_id}",
            observed_at=read_at,
            where=f"{where}: values.{key}",
        )
        for key, raw in sorted(values.items())
    ]


_P5_IMPORTS: Sequence[tuple[str, str, str]] = (
    ("NumberOfFullCycles", "NumberOfFullCyclesValue", "6.7.6.4"),
    ("EnergyThroughput", "EnergyThroughputValue", "6.7.6.7"),
    ("CapacityThroughput", "CapacityThroughputValue", "6.7.6.8"),
)
_P5_TEMPERATURE: Sequence[tuple[str, str]] = (
    ("TimeExtremeHighTemp", "6.7.7.5"),
    ("TimeExtremeLowTemp", "6.7.7.6"),
    ("TimeExtremeHighTempCharging", "6.7.7.7"),
    ("TimeExtremeLowTempCharging", "6.7.7.8"),
)


def read_earlier_passport(
    path: Path, *, passport_id: str, naive_is_utc: bool = False
) -> list[PassportValue]:
    """Usage values from an earlier IDTA-02035 Part 5 Product Condition payload (SAMM JSON),
    marked ``source=earlier_passport`` with ``origin=passport_id``.

    Takes cycle count, throughputs, time at extreme temperatures, negative events and the
    accident documents; each keeps the ``LastUpdate`` of the earlier passport. A payload wrapped
    by this station's exports (``{"payload": ..., "metadata": ...}``) is unwrapped. SAMM allows
    timestamps without a zone; they are refused unless ``naive_is_utc`` says they are UTC.
    """
    data = _read_json(path)
    where = str(path)
    if isinstance(data, dict) and "payload" in data and "metadata" in data:
        data = data["payload"]
    if not isinstance(data, dict):
        raise RecordError(f"{where}: not a JSON object")
    out: list[PassportValue] = []
    for entity, value_key, clause in _P5_IMPORTS:
        if entity in data:
            block = data[entity]
            out.append(
                _imported_value(
                    clause,
                    _field(block, value_key, f"{where}: {entity}"),
                    source=Source.EARLIER_PASSPORT,
                    origin=passport_id,
                    observed_at=parse_utc(
                        _field(block, "LastUpdate", f"{where}: {entity}"),
                        key=f"{where}: {entity}.LastUpdate",
                        naive_is_utc=naive_is_utc,
                    ),
                    where=f"{where}: {entity}.{value_key}",
                )
            )
    temperature = data.get("TemperatureInformation")
    if isinstance(temperature, dict):
        stamp = parse_utc(
            _field(temperature, "LastUpdate", f"{where}: TemperatureInformation"),
            key=f"{where}: TemperatureInformation.LastUpdate",
            naive_is_utc=naive_is_utc,
        )
        for name, clause in _P5_TEMPERATURE:
            if name in temperature:
                out.append(
                    _imported_value(
                        clause,
                        temperature[name],
                        source=Source.EARLIER_PASSPORT,
                        origin=passport_id,
                        observed_at=stamp,
                        where=f"{where}: TemperatureInformation.{name}",
                    )
                )
    events = data.get("NegativeEvents")
    if isinstance(events, list) and events:
        texts = []
        stamps = []
        for index, event in enumerate(events):
            texts.append(_field(event, "NegativeEventValue", f"{where}: NegativeEvents[{index}]"))
            stamps.append(
                parse_utc(
                    _field(event, "LastUpdate", f"{where}: NegativeEvents[{index}]"),
                    key=f"{where}: NegativeEvents[{index}].LastUpdate",
                    naive_is_utc=naive_is_utc,
                )
            )
        out.append(
            _imported_value(
                "6.7.8.5",
                texts,
                source=Source.EARLIER_PASSPORT,
                origin=passport_id,
                observed_at=max(stamps),
                where=f"{where}: NegativeEvents",
            )
        )
    if "InformationOnAccidents" in data:
        stamp = max((v.observed_at for v in out), default=datetime(1970, 1, 1, tzinfo=UTC))
        out.append(
            _imported_value(
                "6.7.8.4",
                data["InformationOnAccidents"],
                source=Source.EARLIER_PASSPORT,
                origin=passport_id,
                observed_at=stamp,
                where=f"{where}: InformationOnAccidents",
            )
        )
    return out


def raw_data_sha256(columns: Mapping[str, Iterable[float]]) -> str:
    """SHA-256 of raw time series: column names sorted, each name then its values as IEEE-754
    little-endian doubles, so the digest does not depend on any text formatting."""
    digest = hashlib.sha256()
    for name in sorted(columns):
        values = [float(v) for v in columns[name]]
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(struct.pack(f"<Q{len(values)}d", len(values), *values))
    return digest.hexdigest()
