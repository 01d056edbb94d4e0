"""Results as data: every figure of the README's results table is in the JSON its row's report keeps,
at the precision shown, and every table a report renders from its JSON is what that JSON renders
(``bench/render.py --check``)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
#: A number as the README writes it: 1,698 or 48.6.
NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
#: Measured figures and the unit they share: "48.6 %", "55.8, 55.3 and 86.4 %", "79.9-82.5 %",
#: "93, 134 ms", "1.0-1.03×", "0.9 GB". Minutes and hours are left out: the table gives budgets
#: ("30 min of training") and corpus sizes ("6 h") in them, settings rather than measurements; so
#: are whole factors ("4× time subsampling"), measured ratios having decimals ("2.3×").
UNIT = r"%|×|ms|s|GB"
FIGURES = re.compile(rf"(?<![\w.])(−?(?:{NUMBER})(?:(?:, and |, | and |-)(?:{NUMBER}))*) ?({UNIT})(?!\w)")
SEPARATOR = re.compile(rf"(?:, and |, | and |-)(?={NUMBER})")
#: Targets are no measurements: "≤ 30 %", "(target ≤ 30 % in 60 min: missed)", "the 20 % target".
TARGETS = re.compile(rf"[≤≥] ?(?:{NUMBER}) ?(?:{UNIT})?|target[^:;)]*|(?<![\w.])(?:{NUMBER}) ?(?:{UNIT})? target")
#: Per unit, the scales a JSON value may hold it at (a fraction or a percentage, seconds or ms, ...).
SCALES = {"%": (100, 1), "×": (1,), "ms": (1000, 1), "s": (1, 1e-3), "GB": (1e-9, 1e-3, 1)}


def figures(cell: str) -> list[tuple[str, str]]:
    """The measured figures of a table cell, each (number as written, unit)."""
    found = FIGURES.finditer(TARGETS.sub("", cell))
    return [(number, match[2]) for match in found for number in SEPARATOR.split(match[1])
            if match[2] != "×" or "." in number]


def results_rows() -> list[list[str]]:
    """The README's results table, one list of cells per row (its header left out)."""
    section = (REPOSITORY / "README.md").read_text().split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]


def linked_json(row: list[str]) -> list[Path]:
    """The JSON files a row links to, and those its reports link to."""
    files = []
    for target in re.findall(r"\]\(([^)#]+)", " | ".join(row)):
        page = REPOSITORY / target
        if page.suffix == ".json":
            files.append(page)
        else:
            files += [page.parent / name for name in re.findall(r"\]\(([^)#/]+\.json)\)", page.read_text())]
    return sorted(set(files))


def numbers(value) -> list[float]:
    """Every number in a JSON value, however deep."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [number for item in items for number in numbers(item)]


def shown_as(value: float, number: str, unit: str) -> bool:
    """Whether ``value`` (from a JSON) reads as ``number`` (from the README) at its precision."""
    number = number.replace(",", "").replace("−", "-")
    decimals = len(number.partition(".")[2])
    return any(f"{value * scale:.{decimals}f}" == number for scale in SCALES[unit])


@pytest.mark.parametrize("cell, expected", [
    ("CER 48.6 %, festival 49.1 %; the default corpus: 55.8, 55.3 and 86.4 % (target ≤ 30 % in 60 min: missed)",
     [("48.6", "%"), ("49.1", "%"), ("55.8", "%"), ("55.3", "%"), ("86.4", "%")]),
    ("p95 93, 134 ms and 1,698 ms; 0.40 s (p95; target 0.3 s: missed)",
     [("93", "ms"), ("134", "ms"), ("1,698", "ms"), ("0.40", "s")]),
    ("give 79.9-82.5 %; 19.3 % is 0.7 points under the 20 % target", [("79.9", "%"), ("82.5", "%"), ("19.3", "%")]),
    ("2.3× the audio, 1.0-1.03× at equal batch; 4× subsampling; −9.4 % relative at 40 min",
     [("2.3", "×"), ("1.0", "×"), ("1.03", "×"), ("−9.4", "%")]),
    ("measured 2026-11-30 (8a0b0a9) on 2 cores, 42-55 steps a minute, 30 min", []),
])
def test_figures_of_a_cell(cell, expected):
    assert figures(cell) == expected


@pytest.mark.parametrize("row", results_rows(), ids=lambda row: row[0][:40])
def test_readme_result_figures_are_in_json(row):
    files = linked_json(row)
    if not files:
        pytest.skip(f"its report keeps no JSON: {row[-1]}")
    checked = [figure for cell in row[:2] for figure in figures(cell)]
    assert checked, f"no figure read from the row {row[0]!r}: has the table's layout changed?"
    values = [value for path in files for value in numbers(json.loads(path.read_text()))]
    missing = [f"{number} {unit}" for number, unit in checked
               if not any(shown_as(value, number, unit) for value in values)]
    assert not missing, (f"README results row {row[0]!r}: {missing} are in none of "
                         f"{[path.name for path in files]} at the precision shown")


def test_report_tables_render_from_their_json():
    checked = subprocess.run([sys.executable, "bench/render.py", "--check"], cwd=REPOSITORY, capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
