from __future__ import annotations

import io

from enginekit import BIN, sh
from strata.engine.execution.report import Reporter


def test_quiet_when_not_a_tty() -> None:
    s = io.StringIO()
    r = Reporter(s, tty=False)
    a = sh("//:a", "", [], [f"{BIN}/a"])
    r.build_started(2)
    r.action_started(0, a)
    r.action_finished(0, a, "executed")
    r.action_finished(1, a, "cache_hit")
    r.explain(a, ["ignored without --explain"])
    r.build_finished()
    assert s.getvalue() == "2 actions: 1 executed, 1 cache hits\n"


def test_status_line_on_a_tty_shows_progress_and_running_actions() -> None:
    s = io.StringIO()
    r = Reporter(s, tty=True, explain=True)
    a = sh("//pkg:a", "", [], [f"{BIN}/a"], mnemonic="StoreLayer")
    b = sh("//pkg:b", "", [], [f"{BIN}/b"])
    r.build_started(3)
    r.action_started(0, a)
    r.action_started(1, b)
    assert s.getvalue().endswith("\r\x1b[K[0/3] StoreLayer //pkg:a, Genrule //pkg:b")
    r.action_finished(0, a, "executed", output="warning from tool\n")
    assert "INFO: From Executing StoreLayer //pkg:a:\nwarning from tool\n" in s.getvalue()
    assert s.getvalue().endswith("[1/3] Genrule //pkg:b")
    r.explain(b, ["input x changed"])
    assert f"explain: //pkg:b Genrule {BIN}/b: input x changed\n" in s.getvalue()
    r.explain(b, [f"input {n} changed" for n in range(8)])
    assert (
        f"explain: //pkg:b Genrule {BIN}/b: input 0 changed; input 1 changed; input 2 changed; "
        "input 3 changed; input 4 changed; and 3 more\n"
    ) in s.getvalue()
    r.action_finished(1, b, "in_process")
    r.build_finished()
    assert s.getvalue().endswith("\r\x1b[K3 actions: 1 executed, 0 cache hits, 1 in-process\n")
