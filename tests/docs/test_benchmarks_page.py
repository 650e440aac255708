"""The benchmark table lives in docs/benchmarks.md, where `make bench` rewrites it; the README links to it."""

from __future__ import annotations

from pathlib import Path

from benchmarks.__main__ import BENCHMARKS_PAGE, PERFORMANCE_END, PERFORMANCE_START, update_benchmarks_page

ROOT = Path(__file__).resolve().parents[2]


def test_the_table_moved_out_of_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert PERFORMANCE_START not in readme and "docs/benchmarks.md" in readme
    assert BENCHMARKS_PAGE == ROOT / "docs" / "benchmarks.md"


def test_make_bench_rewrites_only_the_section_between_the_markers(tmp_path):
    page = tmp_path / "benchmarks.md"
    original = BENCHMARKS_PAGE.read_text(encoding="utf-8")
    page.write_text(original, encoding="utf-8")
    update_benchmarks_page("## Performance\n\nnew table\n", page)
    text = page.read_text(encoding="utf-8")
    assert text.startswith(original[: original.index(PERFORMANCE_START)])
    assert text.split(PERFORMANCE_START)[1].split(PERFORMANCE_END)[0] == "\n## Performance\n\nnew table\n"
