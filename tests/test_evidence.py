"""Every measured figure in the README comes from a committed benchmark result (`benchmarks/README.md`).

`benchmarks/README.md` has two tables. "Figures": a README text (an exact substring of README.md), the
command that measures it, the JSON file under `benchmarks/results/` it was written to, and the key of the
value, optionally followed by `/ N` or `* N` (unit conversion). "Not measurements": README texts that look
like figures but are settings, definitions or examples. Checked here:

- each figure's text is in the README, its JSON is committed (tracked by git), its key exists, and the first
  number of the text equals the JSON value rounded to the text's decimals;
- "Tables": every row of a table a benchmark wrote (Markdown, or a JSON list of lines) is in the README;
- every number with a unit of measurement in the README (s, ms, min, GB, MB, windows/s, GFLOP/s, x,
  students/hour, and AUC values) lies inside a figure's or a non-measurement's text.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FLAT = re.sub(r"\s*\n\s*", " ", README)  # line breaks as spaces: a figure's text may wrap
TABLE = (ROOT / "benchmarks" / "README.md").read_text()
RESULTS = ROOT / "benchmarks" / "results"

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
MEASURE = re.compile(
    r"\d[\d,]*(?:\.\d+)?\s?(?:windows/s|GFLOP/s|students/hour|GB|MB|ms|min|s|×|x)(?![\w/])"
    r"|AUC (?:of )?\d\.\d+"
)


def table_rows(title: str) -> list[list[str]]:
    """The rows of the Markdown table under the heading `title` in benchmarks/README.md, cells stripped."""
    section = TABLE.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def unquote(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), f"cell not in backticks: {cell!r}"
    return cell[1:-1].replace("\\|", "|")


FIGURES = table_rows("Figures")
OTHERS = table_rows("Not measurements")


def resolve(data, path: str):
    """`rows[0].train_windows_per_s`, `seconds["name with spaces"]`: the value at that path."""
    for name, index, quoted in re.findall(r'\.?([A-Za-z_]\w*)|\[(-?\d+)\]|\["([^"]+)"\]', path):
        data = data[name or quoted] if (name or quoted) else data[int(index)]
    return data


def lookup(data, key: str) -> float:
    """A path, optionally followed by `/ X`, `* X`, `+ X` or `- X` (left to right), X a number or another path."""
    path, *rest = re.split(r" ([/*+-]) (?![^\[]*\])", key)  # not inside ["..."]
    value = float(resolve(data, path))
    for op, operand in zip(rest[::2], rest[1::2], strict=True):
        other = float(operand) if re.fullmatch(r"[\d.e+-]+", operand) else float(resolve(data, operand))
        value = {"/": value / other, "*": value * other, "+": value + other, "-": value - other}[op]
    return value


def tracked(path: Path) -> bool | None:
    """Whether git tracks `path` (None without a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "--error-unmatch", str(path.relative_to(ROOT))], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    except OSError:
        return None
    if "not a git repository" in out.stderr:
        return None
    return out.returncode == 0


def test_the_tables_are_there():
    assert len(FIGURES) >= 20 and all(len(row) == 4 for row in FIGURES), FIGURES[:3]
    assert len(OTHERS) >= 5 and all(len(row) == 2 for row in OTHERS), OTHERS[:3]


@pytest.mark.parametrize("row", FIGURES, ids=[unquote(r[0])[:40] for r in FIGURES])
def test_each_figure_comes_from_its_committed_json(row):
    text, command, results, key = unquote(row[0]), unquote(row[1]), unquote(row[2]), unquote(row[3])
    assert text in FLAT, f"not in README.md: {text!r}"
    assert "python benchmarks/" in command, command
    path = RESULTS / results
    assert path.is_file(), f"missing results file {path}"
    assert tracked(path) is not False, f"{path} is not committed"
    data = json.loads(path.read_text())
    assert "machine" in data, f"{results}: no machine recorded"
    value = lookup(data, key)
    figure = NUMBER.search(text).group()
    mantissa, _, exponent = figure.replace(",", "").partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    expected = float(figure.replace(",", ""))
    assert abs(value - expected) <= 0.5 * 10.0 ** (int(exponent or 0) - decimals) * (1 + 1e-9), (
        f"README says {figure} ({text!r}) but {results} {key} is {value}")


TABLES = table_rows("Tables")


def table_lines(results: str, key: str) -> list[str]:
    """The lines a benchmark wrote: a Markdown file's table rows (key `-`), or a JSON list of lines."""
    text = (RESULTS / results).read_text()
    if key == "-":
        return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    return [line.strip() for line in resolve(json.loads(text), key) if line.strip() and line[:4] != "|---"]


@pytest.mark.parametrize("row", TABLES, ids=[unquote(r[0]) for r in TABLES])
def test_each_table_is_its_benchmark_output(row):
    """Every row a benchmark wrote (its Markdown file's table rows, or a JSON list of lines) is in the README."""
    results, command, key = unquote(row[0]), unquote(row[1]), row[2].strip("`")
    assert "python benchmarks/" in command, command
    assert tracked(RESULTS / results) is not False, f"{RESULTS / results} is not committed"
    rows = table_lines(results, key)
    assert len(rows) >= 3, rows
    missing = [line for line in rows if line not in README]
    assert not missing, f"rows of {results} not in the README: {missing}"


def test_every_measured_number_in_the_readme_has_an_entry():
    covered = [False] * len(FLAT)
    tables = [line for r in TABLES if (RESULTS / unquote(r[0])).is_file()
              for line in table_lines(unquote(r[0]), r[2].strip("`"))]
    for text in [unquote(r[0]) for r in FIGURES + OTHERS] + tables:
        for match in re.finditer(re.escape(text), FLAT):
            covered[match.start() : match.end()] = [True] * (match.end() - match.start())
    missing = []
    for match in MEASURE.finditer(FLAT):
        if not all(covered[match.start() : match.end()]):
            missing.append(f"{match.group()!r} in ...{FLAT[max(0, match.start() - 40) : match.end() + 10]}...")
    assert not missing, "figures without an entry in benchmarks/README.md:\n" + "\n".join(missing)


def test_the_lookup_and_the_coverage_check_can_fail():
    data = {"rows": [{"s": 12.74}, {"s": 6.37}], "seconds": {"a b": 90.0}}
    assert lookup(data, "rows[0].s") == 12.74 and lookup(data, 'seconds["a b"] / 60') == 1.5
    assert lookup(data, "rows[0].s / rows[1].s") == 2.0 and lookup(data, "rows[0].s / rows[1].s * 3") == 6.0
    assert lookup(data, "rows[1].s + rows[1].s / 2") == 6.37 and lookup({"a + b": {"c": 1}}, '["a + b"].c + 1') == 2
    assert MEASURE.search("took 6.5 min") and MEASURE.search("AUC 0.867") and MEASURE.search("3.35× less")
    assert not MEASURE.search("29 keypoints") and not MEASURE.search("2 seeds")
