"""X3: malicious imports. Every file a user can feed the station (lot CSV/JSON, BDF CSV, EIS
spectrum CSV, grading record / earlier passport / BMS readout JSON) is tried with wrong
encodings, NaN/inf, huge numbers, deep nesting, duplicate keys and a million rows with a bad
last row. Each must raise the reader's own error (which the CLI and GUI show) and import
nothing: the reference is the exception type and, for lots, the database's row count.
Figures printed: files tried, and the time to refuse a million-row file (not asserted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from station.cells import CellDataError, read_lot_file
from station.clock import ManualClock
from station.grading.readers import CHUNK_LINES, InputFileError, read_bdf_csv, read_spectrum_csv
from station.passport.record import RecordError, load_record, read_bms_readout
from station.storage import Storage

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "1" + "0" * 5000
BDF_HEAD = "Test Time / s,Voltage / V,Current / A\n"
SPECTRUM_HEAD = "frequency,real,imag\n"
GOOD_SPECTRUM = "".join(f"{10.0**k:g},{0.01 + k * 1e-3},{-1e-3 * k}\n" for k in range(6))

LOT_FILES: dict[str, tuple[str, bytes]] = {
    "latin-1 CSV": ("lot.csv", "cell_id,chemistry\nCÉLL,NMC\n".encode("latin-1")),
    "BOM + UTF-16 CSV": ("lot.csv", "cell_id,chemistry\nA,NMC\n".encode("utf-16")),
    "deep JSON": ("lot.json", DEEP.encode()),
    "duplicate keys": ("lot.json", b'[{"cell_id":"a","cell_id":"b","chemistry":"NMC"}]'),
    "huge integer": ("lot.json", f'[{{"cell_id":"a","rated_capacity_ah":{HUGE_INT}}}]'.encode()),
    "NaN": ("lot.json", b'[{"cell_id":"a","chemistry":"NMC","rated_capacity_ah":NaN}]'),
    "1e400": ("lot.json", b'[{"cell_id":"a","chemistry":"NMC","rated_capacity_ah":1e400}]'),
    "path-like ID": ("lot.json", b'[{"cell_id":"../../x","chemistry":"NMC"}]'),
    "not a list": ("lot.json", b'{"a": 1}'),
}
BDF_FILES: dict[str, bytes] = {
    "latin-1": (BDF_HEAD + "0,3.5,1\n1,3.6,1\n2,3.6,\xb5\n").encode("latin-1"),
    "NaN": (BDF_HEAD + "0,3.5,1\n1,nan,1\n2,3.6,1\n").encode(),
    "inf": (BDF_HEAD + "0,3.5,1\n1,inf,1\n2,3.6,1\n").encode(),
    "1e400": (BDF_HEAD + "0,3.5,1\n1,1e400,1\n2,3.6,1\n").encode(),
    "huge integer": (BDF_HEAD + f"0,3.5,1\n1,{HUGE_INT},1\n2,3.6,1\n").encode(),
    "time backwards": (BDF_HEAD + "0,3.5,1\n2,3.6,1\n1,3.6,1\n").encode(),
}
SPECTRUM_FILES: dict[str, bytes] = {
    "latin-1": (SPECTRUM_HEAD + GOOD_SPECTRUM + "1,0.01,\xb5\n").encode("latin-1"),
    "NaN": (SPECTRUM_HEAD + GOOD_SPECTRUM + "0.1,nan,0.002\n").encode(),
    "inf": (SPECTRUM_HEAD + GOOD_SPECTRUM + "0.1,inf,0.002\n").encode(),
    "negative frequency": (SPECTRUM_HEAD + GOOD_SPECTRUM + "-0.1,0.01,0.002\n").encode(),
    "huge integer": (SPECTRUM_HEAD + GOOD_SPECTRUM + f"0.1,{HUGE_INT},0.002\n").encode(),
}
JSON_FILES: dict[str, bytes] = {
    "deep": DEEP.encode(),
    "latin-1": '{"a":"\xe9"}'.encode("latin-1"),
    "huge integer": f'{{"format":{HUGE_INT}}}'.encode(),
    "NaN": b'{"format":NaN}',
    "list": b"[1, 2]",
    "truncated": b'{"format": "station-bms-readout/1", "values": {',
}


def refused(read: Callable[[], object], error: type[Exception]) -> str:
    with pytest.raises(error) as caught:
        read()
    assert str(caught.value), "the error must say what is wrong"
    return str(caught.value)


@pytest.mark.parametrize("name", sorted(LOT_FILES))
def test_malicious_lot_file_is_refused_and_imports_nothing(tmp_path: Path, name: str) -> None:
    file_name, data = LOT_FILES[name]
    path = tmp_path / file_name
    path.write_bytes(data)
    storage = Storage(tmp_path / "x3.db", ManualClock(1_800_000_000.0))
    try:
        message = refused(lambda: storage.add_cells(read_lot_file(path), who="x3"), CellDataError)
        with storage.reader() as conn:
            assert conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 0
    finally:
        storage.close()
    print(f"X3 lot {name}: {message[:80]}")


@pytest.mark.parametrize("name", sorted(BDF_FILES))
def test_malicious_bdf_csv_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "series.csv"
    path.write_bytes(BDF_FILES[name])
    print(f"X3 BDF {name}: {refused(lambda: read_bdf_csv(path), InputFileError)[:80]}")


@pytest.mark.parametrize("name", sorted(SPECTRUM_FILES))
def test_malicious_spectrum_csv_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "spectrum.csv"
    path.write_bytes(SPECTRUM_FILES[name])
    print(f"X3 spectrum {name}: {refused(lambda: read_spectrum_csv(path), InputFileError)[:80]}")


@pytest.mark.parametrize("name", sorted(JSON_FILES))
@pytest.mark.parametrize("reader", [load_record, read_bms_readout], ids=["record", "bms"])
def test_malicious_record_json_is_refused(
    tmp_path: Path, name: str, reader: Callable[[Path], object]
) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(JSON_FILES[name])
    print(f"X3 JSON {name}: {refused(lambda: reader(path), RecordError)[:80]}")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bad_line", [2, CHUNK_LINES, CHUNK_LINES + 1, CHUNK_LINES + 2, 150_001])
def test_bad_cell_of_a_long_series_is_named_by_its_line(
    tmp_path: Path, newline: str, bad_line: int
) -> None:
    # line 1 is the header; line k holds time k; the bad cell is looked for block by block
    lines = [BDF_HEAD.strip()] + [f"{k},3.7,1.0" for k in range(2, 150_002)]
    lines[bad_line - 1] = f"{bad_line},3.7,1.0x"
    path = tmp_path / "series.csv"
    path.write_bytes((newline.join(lines) + newline).encode())
    message = refused(lambda: read_bdf_csv(path), InputFileError)
    assert f"line {bad_line}, column 'current_a': '1.0x' is not a number" in message


def _many_rows(tmp_path: Path, rows: int) -> tuple[Path, Path]:
    lot = tmp_path / "big.csv"
    with lot.open("w") as fh:
        fh.write("cell_id,chemistry,rated_capacity_ah\n")
        fh.writelines(f"C{n:07d},NMC,3.0\n" for n in range(rows - 1))
        fh.write("LAST,NMC,not-a-number\n")
    series = tmp_path / "big-series.csv"
    with series.open("w") as fh:
        fh.write(BDF_HEAD)
        fh.writelines(f"{n * 0.1:.1f},3.7,1.0\n" for n in range(rows - 1))
        fh.write(f"{rows * 0.1:.1f},3.7,oops\n")
    return lot, series


def _bad_last_row(tmp_path: Path, rows: int) -> None:
    lot, series = _many_rows(tmp_path, rows)
    storage = Storage(tmp_path / "big.db", ManualClock(1_800_000_000.0))
    try:
        start = time.perf_counter()
        refused(lambda: storage.add_cells(read_lot_file(lot), who="x3"), CellDataError)
        lot_s = time.perf_counter() - start
        with storage.reader() as conn:
            assert conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 0
    finally:
        storage.close()
    start = time.perf_counter()
    message = refused(lambda: read_bdf_csv(series), InputFileError)
    series_s = time.perf_counter() - start
    assert "line" in message or "row" in message
    print(
        f"X3 {rows:,} rows with a bad last row: lot refused in {lot_s:.2f} s (0 cells stored), "
        f"BDF series refused in {series_s:.2f} s: {message[:70]}"
    )


def test_bad_last_row_of_a_long_file_imports_nothing(tmp_path: Path) -> None:
    _bad_last_row(tmp_path, 10_000)


@pytest.mark.slow
def test_bad_last_row_of_a_million_rows_imports_nothing(tmp_path: Path) -> None:
    _bad_last_row(tmp_path, 1_000_000)
