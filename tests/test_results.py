"""benchmarks/RESULTS.md agrees with the JSON in benchmarks/results/, and the paths the docs name exist.

Every table of RESULTS.md sits between `<!-- table: NAME -->` and `<!-- /table -->` and must be exactly what
`benchmarks/tables.py` makes from the JSON now (`python benchmarks/tables.py --write` rewrites them).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"


def load_tables():
    """benchmarks/tables.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("benchmark_tables", BENCHMARKS / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = load_tables()
RESULTS_MD = (BENCHMARKS / "RESULTS.md").read_text()
MARKED = [(match.group(1), match.group(0)) for match in tables.MARKED.finditer(RESULTS_MD)]


def test_every_marker_names_a_known_table_and_is_closed():
    opened = re.findall(r"^<!-- table: (.*?) -->$", RESULTS_MD, re.M)
    assert [name for name in opened if name not in tables.TABLES] == []
    assert len(opened) == len(MARKED) == len(re.findall(r"^<!-- /table -->$", RESULTS_MD, re.M))
    assert "<!-- table:" not in "".join(block[1:] for _, block in MARKED)  # none nested or left open


def test_every_table_tables_py_makes_is_in_results():
    assert sorted(set(tables.TABLES) - {name for name, _ in MARKED}) == []
    assert all(tables.TABLES[name]() for name in tables.TABLES), "a table's JSON is missing from benchmarks/results/"


@pytest.mark.parametrize("name, committed", MARKED, ids=[name for name, _ in MARKED])
def test_committed_table_is_what_the_json_gives_now(name, committed):
    assert committed == tables.marked(name), f"table {name} is out of date: run `python benchmarks/tables.py --write`"


def test_results_is_organised_by_topic_not_by_issue():
    assert re.findall(r"^.*\bissues? \d+.*$", RESULTS_MD, re.I | re.M) == []


def named_paths(text: str) -> set[str]:
    """The repository paths of scripts, figures, results and docs under benchmarks/ that `text` names."""
    return set(re.findall(r"benchmarks/[\w./-]+\.(?:py|png|json|md)\b", text))


def test_paths_the_docs_and_scripts_name_exist():
    prose = tables.MARKED.sub("", RESULTS_MD)  # the tables quote the commands as they were recorded
    links = {f"benchmarks/{link}" for link in re.findall(r"\]\(((?:figures|results)/[^)]+|\w+\.md)\)", prose)}
    texts = [prose, (BENCHMARKS / "README.md").read_text(), (REPO / "README.md").read_text()]
    texts += [script.read_text() for script in sorted(BENCHMARKS.glob("**/*.py"))]
    named = links.union(*map(named_paths, texts))
    assert named, "no benchmark paths found: the pattern is wrong"
    assert sorted(path for path in named if not (REPO / path).is_file()) == []


def test_every_script_is_in_a_folder_by_purpose_and_in_the_benchmarks_readme():
    readme = (BENCHMARKS / "README.md").read_text()
    scripts = sorted(BENCHMARKS.glob("*/*.py"))
    assert {script.parent.name for script in scripts} == {"quality", "speed", "studies"}
    assert sorted(path.name for path in BENCHMARKS.glob("*.py")) == ["record.py", "tables.py"]
    missing = [
        f"{s.parent.name}/{s.name}"
        for s in scripts
        if f"## {s.parent.name}/" not in readme or f"`{s.name}" not in readme
    ]
    assert missing == []
