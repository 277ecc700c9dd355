"""The order `make test` hands test files to its xdist workers (tests/support/file_order.py):
files the measured table lacks first, then its longest first, files of `alone` tests last, each
file's tests in their own order; and a real xdist run follows it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.file_order import ordered, seconds_by_file

ROOT = Path(__file__).resolve().parents[2]


class Item:
    """What the ordering reads of a pytest item: its node id and markers."""

    def __init__(self, nodeid: str, alone: bool = False) -> None:
        self.nodeid = nodeid
        self.alone = alone

    def get_closest_marker(self, name: str) -> object:
        return object() if name == "alone" and self.alone else None


def nodeids(items: list) -> list[str]:
    return [item.nodeid for item in items]


def test_unmeasured_files_first_then_the_longest_alone_files_last() -> None:
    items = [
        Item("t/many.py::a"),
        Item("t/many.py::b[x]"),
        Item("t/many.py::c"),
        Item("t/race.py::r", alone=True),
        Item("t/quick.py::q"),
        Item("t/slow.py::s"),
        Item("t/mixed.py::m"),
        Item("t/mixed.py::n", alone=True),
        Item("t/many.py::b[y]"),  # pytest may place a file's tests apart: they are regrouped
        Item("tests/packaging/test_container_image.py::i"),
    ]
    table = {"t/quick.py": 1.0, "t/slow.py": 100.0, "t/race.py": 500.0}
    assert nodeids(ordered(items, table)) == [  # type: ignore[arg-type]
        "t/many.py::a",  # not measured: first, the most tests first
        "t/many.py::b[x]",
        "t/many.py::c",
        "t/many.py::b[y]",
        "t/mixed.py::m",  # one alone test among others: placed like any file
        "t/mixed.py::n",
        "t/slow.py::s",  # measured: the longest first
        "t/quick.py::q",
        "tests/packaging/test_container_image.py::i",  # waits for the image base: late
        "t/race.py::r",  # only alone tests: last, however long
    ]


def test_the_table_is_made_from_a_junit_report(tmp_path: Path) -> None:
    report = tmp_path / "run.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.a.test_x" file="tests/a/test_x.py" name="t1" time="1.5"/>'
        '<testcase classname="tests.a.test_x.Case" file="tests/a/test_x.py" name="t2" time="2"/>'
        '<testcase classname="tests.b.test_y" file="tests/b/test_y.py" name="t3" time="0.25"/>'
        "</testsuite></testsuites>"
    )
    assert seconds_by_file(str(report)) == {"tests/a/test_x.py": 3.5, "tests/b/test_y.py": 0.25}


INNER_CONFTEST = """
import pytest
from pathlib import Path

pytest_plugins = ["tests.support.file_order"]


@pytest.fixture(autouse=True)
def record(request):
    with open(Path(__file__).parent / "ran.txt", "a") as ran:
        ran.write(request.node.nodeid + "\\n")
"""


def write_tests(folder: Path, name: str, count: int, alone: bool = False) -> None:
    mark = "@pytest.mark.alone\n" if alone else ""
    body = "".join(f"{mark}def test_{n}():\n    pass\n\n" for n in range(count))
    (folder / name).write_text("import pytest\n\n" + body)


def test_an_xdist_run_hands_out_files_in_this_order(tmp_path: Path) -> None:
    """With one worker, files run in the order the controller hands them out. Left to xdist
    (most tests first) the file of three `alone` tests would come second."""
    pytest.importorskip("xdist")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    alone: runs with the machine to itself\n"
    )
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    write_tests(tmp_path, "test_four.py", 4)
    write_tests(tmp_path, "test_three_alone.py", 3, alone=True)
    write_tests(tmp_path, "test_two.py", 2)
    write_tests(tmp_path, "test_one.py", 1)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "1",
            "--dist",
            "loadfile",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = []
    for line in (tmp_path / "ran.txt").read_text().splitlines():
        path = line.split("::", 1)[0]
        if not files or files[-1] != path:
            files.append(path)
    assert files == ["test_four.py", "test_two.py", "test_one.py", "test_three_alone.py"]
