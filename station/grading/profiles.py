"""Grading profiles (TOML data, versioned and hashed) and the rule engine that applies them.

A profile has safety ``gates`` (any failing gate decides the outcome: QUARANTINE before REJECT
before RETEST), ordered ``bins`` (the first bin whose rules all pass is the grade; a bin without
rules catches the rest), lot-level limits and matching windows. Shipped profiles live in
``station/data/profiles`` (``second-life``, ``incoming-inspection``; chemistry presets in
``chemistries.toml``) and follow ``../shared/reference/grading.md`` section 8.

Thresholds are numbers, references (``"chemistry.min_voltage_v"``, ``"datasheet.max_acir_ohm"``)
or batch-relative (``{ batch_median_plus_mad = 5 }``). A rule may compare a derived value
(``of = "abs_dev_from_batch_median"``). Guard bands: a value within ``guard_band_k`` standard
uncertainties of its threshold is RETEST, never a guess. Every rule result states the value,
threshold, margin, verdict and the profile version in plain words.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from station.grading.results import CellMetrics, Grade, RuleResult, Verdict

PROFILE_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"
CHEMISTRY_FILE = "chemistries.toml"
COMPARISONS = (">=", "<=")
SEVERITY = ("QUARANTINE", "REJECT", "RETEST")
DERIVED = ("value", "abs_dev_from_batch_median")
MIN_LOT_SIZE = 5  # fewer cells give no meaningful median/MAD for lot-relative limits


class ProfileError(ValueError):
    """A profile file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Rule:
    """One comparison: ``metric`` (or a fact) against a threshold."""

    name: str
    metric: str
    comparison: str
    threshold: float | str | dict[str, float]
    of: str = "value"
    words: str = ""
    source: str = ""
    fact: str | None = None
    expect: bool = True


@dataclass(frozen=True)
class Gate:
    rule: Rule
    outcome: str
    when_missing: str = "RETEST"


@dataclass(frozen=True)
class Bin:
    name: str
    use: str
    rules: tuple[Rule, ...]
    source: str = ""


@dataclass(frozen=True)
class Profile:
    """A loaded grading profile. ``sha256`` covers the profile file and the chemistry presets."""

    name: str
    version: str
    description: str
    sha256: str
    guard_band_k: float
    gates: tuple[Gate, ...]
    bins: tuple[Bin, ...]
    chemistries: dict[str, dict[str, float | str]]
    lot: dict[str, object] = field(default_factory=dict)
    matching: dict[str, float | str] = field(default_factory=dict)


def _need(table: dict[str, object], key: str, where: str, kind: type | tuple[type, ...]) -> object:
    if key not in table:
        raise ProfileError(f"{where}: missing key {key!r}")
    value = table[key]
    if not isinstance(value, kind):
        raise ProfileError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
    return value


def _threshold(raw: object, where: str) -> float | str | dict[str, float]:
    if isinstance(raw, bool):
        raise ProfileError(f"{where}: threshold must be a number, reference or batch table")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        if not raw.startswith(("chemistry.", "datasheet.")):
            raise ProfileError(
                f"{where}: threshold reference {raw!r} must start with 'chemistry.' or 'datasheet.'"
            )
        return raw
    if isinstance(raw, dict) and set(raw) == {"batch_median_plus_mad"}:
        return {"batch_median_plus_mad": float(raw["batch_median_plus_mad"])}
    raise ProfileError(f"{where}: threshold {raw!r} is not understood")


def _rule(table: dict[str, object], where: str, name: str) -> Rule:
    if "fact" in table:
        return Rule(
            name=name,
            metric=str(table["fact"]),
            comparison="is",
            threshold=float(bool(_need(table, "expect", where, bool))),
            words=str(table.get("words", "")),
            source=str(table.get("source", "")),
            fact=str(table["fact"]),
            expect=bool(table["expect"]),
        )
    metric = str(_need(table, "metric", where, str))
    comparison = str(_need(table, "comparison", where, str))
    if comparison not in COMPARISONS:
        raise ProfileError(f"{where}: comparison {comparison!r} is not one of {COMPARISONS}")
    of = str(table.get("of", "value"))
    if of not in DERIVED:
        raise ProfileError(f"{where}: 'of' must be one of {DERIVED}, got {of!r}")
    return Rule(
        name=name,
        metric=metric,
        comparison=comparison,
        threshold=_threshold(_need(table, "threshold", where, (int, float, str, dict)), where),
        of=of,
        words=str(table.get("words", "")),
        source=str(table.get("source", "")),
    )


def parse_profile(text: bytes, chemistry_text: bytes, origin: str = "<profile>") -> Profile:
    """Parse and validate a profile; ``ProfileError`` names the file and key on any problem."""
    try:
        data = tomllib.loads(text.decode("utf-8"))
        chemistries = tomllib.loads(chemistry_text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ProfileError(f"{origin}: not valid TOML: {error}") from None
    head = _need(data, "profile", origin, dict)
    assert isinstance(head, dict)
    gates = []
    for k, raw in enumerate(data.get("gates", [])):
        where = f"{origin}: gates[{k}]"
        name = str(_need(raw, "name", where, str))
        outcome = str(_need(raw, "outcome", where, str))
        if outcome not in SEVERITY:
            raise ProfileError(f"{where}: outcome {outcome!r} is not one of {SEVERITY}")
        missing = str(raw.get("when_missing", "RETEST"))
        if missing not in (*SEVERITY, "PASS"):
            raise ProfileError(f"{where}: when_missing {missing!r} is not understood")
        gates.append(Gate(_rule(raw, where, name), outcome, missing))
    bins = []
    raw_bins = _need(data, "bins", origin, list)
    assert isinstance(raw_bins, list)
    for k, raw in enumerate(raw_bins):
        where = f"{origin}: bins[{k}]"
        name = str(_need(raw, "name", where, str))
        rules = tuple(
            _rule(r, f"{where}.rules[{j}]", f"bin {name}: {r.get('metric', '?')}")
            for j, r in enumerate(list(raw.get("rules", [])))
        )
        bins.append(Bin(name, str(raw.get("use", "")), rules, str(raw.get("source", ""))))
    if not bins:
        raise ProfileError(f"{origin}: needs at least one bin")
    return Profile(
        name=str(_need(head, "name", f"{origin}: profile", str)),
        version=str(_need(head, "version", f"{origin}: profile", str)),
        description=str(head.get("description", "")),
        sha256=hashlib.sha256(text + b"\0" + chemistry_text).hexdigest(),
        guard_band_k=float(head.get("guard_band_k", 1.96)),
        gates=tuple(gates),
        bins=tuple(bins),
        chemistries=chemistries,
        lot=dict(data.get("lot", {})),
        matching=dict(data.get("matching", {})),
    )


def available_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml") if p.name != CHEMISTRY_FILE)


def load_profile(name_or_path: str | Path, directory: Path = PROFILE_DIR) -> Profile:
    """A shipped profile by name (``"second-life"``) or any profile file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = directory / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(
            f"no profile {str(name_or_path)!r}; shipped: {', '.join(available_profiles())}"
        )
    chemistry_path = path.parent / CHEMISTRY_FILE
    if not chemistry_path.is_file():
        chemistry_path = directory / CHEMISTRY_FILE
    return parse_profile(path.read_bytes(), chemistry_path.read_bytes(), str(path))


# --- batch statistics ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureStats:
    """Lot statistics of one metric. ``mad`` is the raw median absolute deviation (unscaled)."""

    metric: str
    n: int
    median: float
    mad: float
    mean: float
    std: float
    cv_pct: float
    minimum: float
    maximum: float
    outliers: tuple[str, ...]


def batch_statistics(
    cells: Sequence[CellMetrics], metrics: Sequence[str] | None = None, outlier_mad_k: float = 3.0
) -> dict[str, FeatureStats]:
    """Median, MAD, mean, sigma, sigma/mu and outliers beyond median +- k MAD, per metric."""
    names = sorted({m for c in cells for m in c.figures}) if metrics is None else list(metrics)
    out: dict[str, FeatureStats] = {}
    for name in names:
        pairs = [(c.cell_id, c.value(name)) for c in cells]
        present = [(cid, v) for cid, v in pairs if v is not None]
        if not present:
            continue
        values = np.array([v for _, v in present])
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median)))
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        outliers = tuple(
            cid for cid, v in present if abs(v - median) > outlier_mad_k * mad and mad > 0
        )
        out[name] = FeatureStats(
            metric=name,
            n=len(values),
            median=median,
            mad=mad,
            mean=mean,
            std=std,
            cv_pct=abs(std / mean) * 100.0 if mean else float("nan"),
            minimum=float(values.min()),
            maximum=float(values.max()),
            outliers=outliers,
        )
    return out


@dataclass(frozen=True)
class LotReport:
    """Lot statistics and the lot-level flags raised against the profile's ``[lot]`` limits."""

    stats: dict[str, FeatureStats]
    flags: tuple[str, ...]


def lot_report(cells: Sequence[CellMetrics], profile: Profile) -> LotReport:
    k = float(profile.lot.get("outlier_mad_k", 3.0))  # type: ignore[arg-type]
    stats = batch_statistics(cells, outlier_mad_k=k)
    flags: list[str] = []
    limits = profile.lot.get("max_cv_pct", {})
    assert isinstance(limits, dict)
    for metric, limit in sorted(limits.items()):
        st = stats.get(metric)
        if st is not None and st.cv_pct > float(limit):
            flags.append(
                f"{metric}: lot spread sigma/mu {st.cv_pct:.3g} % exceeds {float(limit):g} % "
                "(points to a process or measurement problem)"
            )
    for metric, st in sorted(stats.items()):
        if st.outliers:
            flags.append(
                f"{metric}: {len(st.outliers)} cell(s) beyond median +- {k:g} MAD "
                f"({', '.join(st.outliers)})"
            )
    return LotReport(stats, tuple(flags))


# --- rule evaluation -------------------------------------------------------------------------


def _resolve_threshold(
    rule: Rule,
    cell: CellMetrics,
    profile: Profile,
    stats: dict[str, FeatureStats] | None,
    datasheet: dict[str, float],
) -> tuple[float | None, str]:
    t = rule.threshold
    if isinstance(t, float):
        return t, f"{t:g}"
    if isinstance(t, str):
        scope, key = t.split(".", 1)
        if scope == "chemistry":
            preset = profile.chemistries.get(cell.chemistry, {})
            value = preset.get(key)
            label = f"{key} of {cell.chemistry}"
        else:
            value = datasheet.get(key)
            label = f"datasheet {key}"
        return (float(value), label) if isinstance(value, int | float) else (None, label)
    st = None if stats is None else stats.get(rule.metric)
    k = t["batch_median_plus_mad"]
    if st is None or st.n < MIN_LOT_SIZE:
        return None, f"lot median + {k:g} MAD (needs a lot of {MIN_LOT_SIZE} or more cells)"
    # A lot spread below the cell's own measurement uncertainty is not resolved by the
    # instrument: the uncertainty then stands in for the MAD, so a tight lot of identical
    # readings does not put every cell on the edge.
    figure = cell.figures.get(rule.metric)
    sigma = figure.uncertainty if figure is not None and figure.uncertainty else 0.0
    spread = max(st.mad, sigma)
    return (
        st.median + k * spread,
        f"lot median {st.median:.4g} + {k:g} x max(MAD {st.mad:.3g}, uncertainty {sigma:.3g})",
    )


def evaluate_rule(
    rule: Rule,
    cell: CellMetrics,
    profile: Profile,
    stats: dict[str, FeatureStats] | None = None,
    datasheet: dict[str, float] | None = None,
) -> RuleResult:
    """Evaluate one rule with its guard band and explain the result in words."""
    tag = f"[{profile.name} v{profile.version}]"
    if rule.fact is not None:
        fact = cell.facts.get(rule.fact)
        if fact is None:
            return RuleResult(
                rule.name,
                rule.fact,
                None,
                "",
                "is",
                float(rule.expect),
                None,
                None,
                Verdict.MISSING,
                f"{tag} {rule.fact} was not recorded at intake ({rule.words})",
            )
        ok = fact == rule.expect
        return RuleResult(
            rule.name,
            rule.fact,
            float(fact),
            "",
            "is",
            float(rule.expect),
            None,
            None,
            Verdict.PASS if ok else Verdict.FAIL,
            f"{tag} {rule.fact} is {str(fact).lower()}, required {str(rule.expect).lower()}: "
            + ("pass" if ok else f"fail - {rule.words}"),
        )
    figure = cell.figures.get(rule.metric)
    threshold, label = _resolve_threshold(rule, cell, profile, stats, datasheet or {})
    unit = figure.unit if figure is not None else ""
    if threshold is None:
        return RuleResult(
            rule.name,
            rule.metric,
            None,
            unit,
            rule.comparison,
            float("nan"),
            None,
            None,
            Verdict.MISSING,
            f"{tag} no threshold: {label} is not known",
        )
    if figure is None or not figure.ok:
        why = (
            "not measured"
            if figure is None
            else (
                "unusable (" + ", ".join(sorted(f.value for f in figure.flags)) + ")"
                if figure.flags
                else "not computable"
            )
        )
        return RuleResult(
            rule.name,
            rule.metric,
            None,
            unit,
            rule.comparison,
            threshold,
            None,
            None,
            Verdict.MISSING,
            f"{tag} {rule.metric} is {why}; it must be measured again",
        )
    value = figure.value
    shown = rule.metric
    if rule.of == "abs_dev_from_batch_median":
        st = None if stats is None else stats.get(rule.metric)
        if st is None or st.n < MIN_LOT_SIZE:
            return RuleResult(
                rule.name,
                rule.metric,
                None,
                unit,
                rule.comparison,
                threshold,
                None,
                None,
                Verdict.MISSING,
                f"{tag} no lot median of {rule.metric} to compare against",
            )
        value = abs(value - st.median)
        shown = f"|{rule.metric} - lot median {st.median:.6g}|"
    margin = value - threshold if rule.comparison == ">=" else threshold - value
    sigma = figure.uncertainty
    guard = profile.guard_band_k * sigma if sigma is not None else 0.0
    if abs(margin) <= guard:
        verdict = Verdict.RETEST
        words = (
            f"within the measurement uncertainty of the edge (+-{guard:.3g} {unit}, "
            f"{profile.guard_band_k:g} sigma): re-test"
        )
    elif margin >= 0:
        verdict, words = Verdict.PASS, "pass"
    else:
        verdict, words = Verdict.FAIL, "fail" + (f" - {rule.words}" if rule.words else "")
    return RuleResult(
        rule.name,
        rule.metric,
        value,
        unit,
        rule.comparison,
        threshold,
        margin,
        sigma,
        verdict,
        f"{tag} {shown} = {value:.6g} {unit}, required {rule.comparison} {threshold:.6g} "
        f"({label}), margin {margin:+.3g} {unit}: {words}",
    )


def _why_not(bin_name: str, results: list[RuleResult]) -> str:
    """Words for the better bin a cell just missed, e.g. ``"; not B: resistance_increase_pct
    77.9 % (needs <= 75 %)"``, so a bin grade says what held it back."""
    failed = []
    for r in results:
        if r.verdict is Verdict.FAIL and r.value is not None:
            unit = "" if r.unit in ("", "1") else f" {r.unit}"
            failed.append(
                f"{r.metric} {r.value:.3g}{unit} (needs {r.comparison} {r.threshold:g}{unit})"
            )
    return f"; not {bin_name}: {', '.join(failed)}" if failed else ""


def grade_cell(
    cell: CellMetrics,
    profile: Profile,
    stats: dict[str, FeatureStats] | None = None,
    datasheet: dict[str, float] | None = None,
) -> Grade:
    """Gates first, then the first bin whose rules all pass; every rule is kept as evidence."""
    if cell.chemistry not in profile.chemistries:
        raise ProfileError(
            f"cell {cell.cell_id}: chemistry {cell.chemistry!r} has no preset; known: "
            f"{', '.join(sorted(profile.chemistries))}"
        )
    evidence: list[RuleResult] = []
    gate_outcomes: list[tuple[str, str]] = []
    for gate in profile.gates:
        result = evaluate_rule(gate.rule, cell, profile, stats, datasheet)
        evidence.append(result)
        if result.verdict is Verdict.FAIL:
            gate_outcomes.append((gate.outcome, gate.rule.name))
        elif result.verdict is Verdict.RETEST:
            gate_outcomes.append(("RETEST", gate.rule.name))
        elif result.verdict is Verdict.MISSING and gate.when_missing != "PASS":
            gate_outcomes.append((gate.when_missing, gate.rule.name))
    head = f"{profile.name} v{profile.version}"
    if gate_outcomes:
        worst = min(gate_outcomes, key=lambda o: SEVERITY.index(o[0]))[0]
        names = ", ".join(n for o, n in gate_outcomes if o == worst)
        return Grade(
            cell.cell_id,
            worst,
            profile.name,
            profile.version,
            profile.sha256,
            tuple(evidence),
            f"{worst} under {head}: gate(s) {names}",
        )
    missed = ""
    for bin_ in profile.bins:
        results = [evaluate_rule(r, cell, profile, stats, datasheet) for r in bin_.rules]
        evidence.extend(results)
        verdicts = {r.verdict for r in results}
        if Verdict.FAIL in verdicts:
            missed = _why_not(bin_.name, results)
            continue
        if verdicts & {Verdict.RETEST, Verdict.MISSING}:
            unsure = ", ".join(r.metric for r in results if r.verdict is not Verdict.PASS)
            return Grade(
                cell.cell_id,
                "RETEST",
                profile.name,
                profile.version,
                profile.sha256,
                tuple(evidence),
                f"RETEST under {head}: bin {bin_.name} cannot be confirmed ({unsure})",
            )
        return Grade(
            cell.cell_id,
            bin_.name,
            profile.name,
            profile.version,
            profile.sha256,
            tuple(evidence),
            f"{bin_.name} under {head}: {bin_.use}{missed}",
            use=bin_.use,
        )
    return Grade(
        cell.cell_id,
        "RETEST",
        profile.name,
        profile.version,
        profile.sha256,
        tuple(evidence),
        f"RETEST under {head}: no bin matched",
    )


def grade_batch(
    cells: Sequence[CellMetrics],
    profile: Profile,
    datasheet: dict[str, float] | None = None,
) -> tuple[list[Grade], LotReport]:
    """Grade a lot: batch statistics first (batch-relative rules need them), then each cell."""
    report = lot_report(cells, profile)
    return [grade_cell(c, profile, report.stats, datasheet) for c in cells], report
