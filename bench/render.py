"""The reports' tables rendered again from their JSON, so that no table drifts from its data.

A page (README.md, docs/**/*.md) marks each table a bench renders from JSON with that bench and
the JSON files, named from the page's folder, in the order of the table's rows:

    <!-- table: bench/presets.py real-speech-corpus.json real-speech-kokoro.json -->
    | preset | budget (min) | ... |
    <!-- end table -->

and this script puts between the markers what that bench's ``report()`` makes of those files
(the table ``python bench/presets.py --report FILE ...`` prints). ``--check`` writes nothing: it
names every table that differs from what its JSON renders, with the difference, and exits 1.
``--provenance`` names every JSON file in docs/results/ that lacks a date, a commit, a CPU or the
command that made it, and exits 1 if there is one.

    python bench/render.py [--check | --provenance]
"""
import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import demo
import harness
import presets
import real_speech

RESULTS = harness.REPOSITORY / "docs" / "results"
#: Per bench named in a marker, its table of the marker's JSON files ({path: data}, in row order).
RENDERERS = {
    "bench/demo.py": lambda files: demo.report(*files.values()),
    "bench/presets.py": lambda files: presets.report(presets.results_of(files)),
    "bench/presets.py#checkpoints": lambda files: presets.checkpoints_report(presets.results_of(files)),
    "bench/real_speech.py": lambda files: real_speech.report(*files.values()),
}
MARKED = re.compile(r"^<!-- table: (?P<bench>\S+) (?P<files>[^>]+?) -->\n(?P<table>.*?)^<!-- end table -->$",
                    re.MULTILINE | re.DOTALL)
#: What every JSON in docs/results/ carries, at its top level, in harness.save's "machine" block,
#: or in a "provenance" block recovered afterwards from its report; "commands" where several made it.
PROVENANCE = ("date", "commit", "cpu", "command")


def pages() -> list[Path]:
    return [harness.REPOSITORY / "README.md", *sorted((harness.REPOSITORY / "docs").rglob("*.md"))]


def rendered(page: Path, bench: str, names: list[str]) -> str:
    """The table of one marker, as its bench renders it from its JSON files."""
    if bench not in RENDERERS:
        raise SystemExit(f"{page}: <!-- table: {bench} ... --> names no bench this script renders "
                         f"(one of {', '.join(RENDERERS)})")
    if missing := [name for name in names if not (page.parent / name).is_file()]:
        raise SystemExit(f"{page}: <!-- table: {bench} ... --> names {missing}, not in {page.parent}")
    return RENDERERS[bench]({page.parent / name: json.loads((page.parent / name).read_text()) for name in names})


def render_page(page: Path) -> tuple[str, list[str]]:
    """The page with every marked table rendered, and what differed, one message per table."""
    text, drift = page.read_text(), []

    def render(match: re.Match) -> str:
        table = rendered(page, match["bench"], match["files"].split()) + "\n"
        if table != match["table"]:
            line = text.count("\n", 0, match.start()) + 1
            difference = difflib.unified_diff(match["table"].splitlines(), table.splitlines(), "as written",
                                              "as its JSON renders", lineterm="", n=0)
            drift.append(f"{page.relative_to(harness.REPOSITORY)}:{line}: the table of {match['bench']} "
                         f"{match['files']} differs from its JSON:\n" + "\n".join(difference))
        return f"<!-- table: {match['bench']} {match['files']} -->\n{table}<!-- end table -->"

    return MARKED.sub(render, text), drift


def missing_provenance(data: dict) -> list[str]:
    """Which of PROVENANCE a result file lacks (absent, null or empty)."""
    places = [data, *(data[key] for key in ("machine", "provenance") if isinstance(data.get(key), dict))]
    names = {field: (field, "commands") if field == "command" else (field,) for field in PROVENANCE}
    return [field for field in PROVENANCE if not any(place.get(name) for place in places for name in names[field])]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 naming every table that differs")
    mode.add_argument("--provenance", action="store_true",
                      help="name the JSON files in docs/results/ without a date, commit, CPU or command")
    args = parser.parse_args()
    if args.provenance:
        missing = {path.name: fields for path in sorted(RESULTS.glob("*.json"))
                   if (fields := missing_provenance(json.loads(path.read_text())))}
        for name, fields in missing.items():
            print(f"{name}: no {', '.join(fields)}")
        sys.exit(1 if missing else 0)
    tables, drift = 0, []
    for page in pages():
        text, page_drift = render_page(page)
        tables += len(MARKED.findall(text))
        drift += page_drift
        if page_drift and not args.check:
            page.write_text(text)
            print(f"rendered {page.relative_to(harness.REPOSITORY)}")
    if args.check and drift:
        print("\n\n".join(drift))
        sys.exit(1)
    print(f"{tables} tables as their JSON renders them")


if __name__ == "__main__":
    main()
