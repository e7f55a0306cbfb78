"""``station eis-fit FILE``: equivalent-circuit fit of one impedance spectrum."""

from __future__ import annotations

import argparse
import json

from station.cli.main import CommandError
from station.grading.eis import CIRCUITS, compare_models, fit, lin_kk
from station.grading.readers import InputFileError, read_spectrum_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eis-fit",
        help="fit an equivalent circuit to an impedance spectrum (CSV)",
        description=(
            "Fit an equivalent circuit to a spectrum (CSV: frequency in Hz, real and imaginary "
            "impedance in ohm, with or without a header) by modulus-weighted least squares, and "
            "check it with the Lin-KK Kramers-Kronig test."
        ),
    )
    parser.add_argument("file", help="spectrum CSV: frequency_hz, z_real_ohm, z_imag_ohm")
    parser.add_argument(
        "--circuit",
        default="auto",
        choices=("auto", *CIRCUITS),
        help="circuit to fit; 'auto' fits all and reports the best by AIC "
        + "; ".join(f"{n} = {c.impedance_py}" for n, c in CIRCUITS.items()),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        spectrum = read_spectrum_csv(args.file)
        if args.circuit == "auto":
            ranked = compare_models(spectrum.frequency_hz, spectrum.z, tuple(CIRCUITS))
            best, others = ranked[0], ranked[1:]
        else:
            best, others = fit(spectrum.frequency_hz, spectrum.z, args.circuit), []
        kk = lin_kk(spectrum.frequency_hz, spectrum.z)
    except (InputFileError, ValueError) as error:
        raise CommandError(str(error)) from None
    doc = {
        "file": args.file,
        "points": int(spectrum.frequency_hz.size),
        "note": spectrum.note,
        "fit": best.as_dict(),
        "compared": [
            {"circuit": o.circuit, "aic": o.aic, "residual_rms": o.residual_rms} for o in others
        ],
        "kramers_kronig": kk.as_dict(),
    }
    if args.json:
        print(json.dumps(doc, indent=2, allow_nan=False))
        return 0
    print(f"{args.file}: {doc['points']} frequencies; {spectrum.note}")
    print(
        f"circuit {best.circuit} ({CIRCUITS[best.circuit].impedance_py}), "
        f"{'converged' if best.converged else 'NOT converged'} in {best.iterations} iterations"
    )
    for name, value, unit, err in zip(
        best.names, best.values, best.units, best.std_errors, strict=True
    ):
        print(f"  {name:>6} = {value:.6g} {unit}  +- {err:.3g}")
    print(f"residual (modulus-weighted RMS): {best.residual_rms * 100:.3g} %")
    for other in others:
        print(f"compared: {other.circuit} AIC {other.aic:.1f} vs {best.aic:.1f}")
    verdict = "valid" if kk.valid else "NOT valid"
    print(
        f"Kramers-Kronig (Lin-KK, M={kk.m}, mu={kk.mu:.2f}): {verdict}, "
        f"max residual {kk.max_residual * 100:.3g} %"
    )
    return 0
