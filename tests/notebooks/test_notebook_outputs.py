"""The comparison of committed outputs with a fresh run: what two runs may differ in is ignored,
anything else is reported (notebook_outputs.py)."""

from __future__ import annotations

import copy

import pytest

nbformat = pytest.importorskip("nbformat")

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output  # noqa: E402

from tests.notebooks.notebook_outputs import VARIES, differences, normalize  # noqa: E402


def _stream(text: str, name: str = "stdout"):
    return new_output("stream", name=name, text=text)


def _notebook(*cells):
    return new_notebook(cells=[new_markdown_cell("# a title"), *cells])


RUN_A = """$ jupybox run -d --name web busybox sleep 600
0f3a5c7d9e1b2a4c6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d
$ jupybox inspect -f '{{.GraphDriver.Data.UpperDir}}' web
/tmp/pytest-of-root/pytest-7/t0/nb/tmp/jupybox-nb06-ab12cd_3/store/containers/0f3a5c7d9e1b/upper
$ ps -o pid,args -p 10945
10945 jupybox-init
CONTAINER ID   IMAGE     COMMAND       CREATED          STATUS          NAMES
0f3a5c7d9e1b   busybox   "sleep 600"   2 seconds ago    Up 2 seconds    web
the bridge: jbx-13d6c8eb1f0 on 172.17.0.1, a veth jv4ce4e364-087c
jolly_thompson_3205: exited 0 · wall 0.3 s · CPU 0.03 s (10% of a core) · peak memory 5.7MiB · pids 2
"""

RUN_B = """$ jupybox run -d --name web busybox sleep 600
81b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a3b5c7d9e1f3a4b6c8d0e2f4a5b7
$ jupybox inspect -f '{{.GraphDriver.Data.UpperDir}}' web
/tmp/jupybox-notebooks-x9y8z7/nb/tmp/jupybox-nb06-zz99yy00/store/containers/81b2c4d6e8f0/upper
$ ps -o pid,args -p 3
    3 jupybox-init
CONTAINER ID   IMAGE     COMMAND       CREATED                  STATUS                  NAMES
81b2c4d6e8f0   busybox   "sleep 600"   Less than a second ago   Up Less than a second   web
the bridge: jbx-9f8e7d6c5b4 on 172.18.0.1, a veth jv81b2c4d6-9f8e
keen_torvalds_5ce2: exited 0 · wall 1.4 s · CPU 0.11 s (8% of a core) · peak memory 12MiB
"""


def test_two_runs_differ_only_in_what_the_machine_and_the_moment_choose():
    assert RUN_A != RUN_B
    assert normalize(RUN_A) == normalize(RUN_B)


def test_a_container_named_in_one_run_and_shown_by_its_id_in_another_agrees():
    # a --rm container's summary names it while it exists, by its short id once it is gone
    assert normalize("[chart of keen_turing_da5d: 3 samples]") == normalize("[chart of 0d687f633327: 0 samples]")


def test_words_commands_and_the_shape_of_an_output_are_kept():
    assert normalize(RUN_A) != normalize(RUN_A.replace("Up 2 seconds", "Exited (0) 2 seconds ago"))
    assert normalize(RUN_A) != normalize(RUN_A.replace("jupybox-init", "jupybox.runtime.launcherd"))
    assert normalize(RUN_A) != normalize(RUN_A.replace("sleep 600", "sleep 60 0"))
    assert normalize(RUN_A) != normalize(RUN_A + "one more line\n")


def _pair(old_outputs, new_outputs, source="print('x')", tags=()):
    meta = {"tags": list(tags)} if tags else {}
    committed = _notebook(new_code_cell(source, outputs=old_outputs, metadata=meta))
    executed = _notebook(new_code_cell(source, outputs=new_outputs, metadata=copy.deepcopy(meta)))
    return committed, executed


def test_the_same_run_with_other_noise_agrees():
    assert differences(*_pair([_stream(RUN_A)], [_stream(RUN_B)])) == []


def test_streams_are_compared_whatever_their_chunking():
    one = [_stream("first line\nsecond line\n")]
    two = [_stream("first line\n"), _stream("second line\n")]
    assert differences(*_pair(one, two)) == []


def test_a_changed_word_is_reported():
    found = differences(*_pair([_stream("mode: root\n")], [_stream("mode: rootless\n")]))
    assert len(found) == 1 and "cell 1" in found[0] and "rootless" in found[0]


def test_a_missing_or_extra_output_is_reported():
    assert differences(*_pair([_stream("hello\n")], []))
    assert differences(*_pair([], [_stream("hello\n")]))
    assert differences(*_pair([_stream("hello\n")], [_stream("hello\n"), _stream("oops\n", name="stderr")]))


def test_an_error_is_reported_even_with_the_same_text():
    error = new_output("error", ename="AssertionError", evalue="", traceback=[])
    assert differences(*_pair([_stream("x\n")], [_stream("x\n"), error]))


def test_a_display_changes_by_its_formats_and_text():
    png = new_output("display_data", data={"image/png": "AAAA", "text/plain": "[chart of jolly_thompson_3205: 6 samples]"})
    other_pixels = new_output("display_data", data={"image/png": "BBBB", "text/plain": "[chart of keen_torvalds_5ce2: 9 samples]"})
    no_image = new_output("display_data", data={"text/plain": "[chart of keen_torvalds_5ce2: 9 samples]"})
    assert differences(*_pair([png], [other_pixels])) == []
    assert differences(*_pair([png], [no_image]))


def test_a_changed_source_or_cell_count_is_reported():
    committed, executed = _pair([_stream("x\n")], [_stream("x\n")])
    executed.cells[1].source = "print('y')"
    assert differences(committed, executed) == ["cell 1: the source differs"]
    executed = _notebook(new_code_cell("print('x')"), new_code_cell("print('y')"))
    assert differences(committed, executed) == ["1 code cells committed, 2 executed"]


def test_output_varies_compares_the_kinds_of_outputs_only():
    a = [_stream("cgroups: layout=hybrid, version=1\n")]
    b = [_stream("cgroups: layout=v2, version=2\n")]
    assert differences(*_pair(a, b))
    assert differences(*_pair(a, b, tags=[VARIES])) == []
    assert differences(*_pair(a, [], tags=[VARIES]))   # an output that vanished still counts
