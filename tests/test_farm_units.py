"""Farm logic without peers: place fit and serial URLs, farm profiles, suite expansion, the job queue."""

from __future__ import annotations

import threading
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.farm.errors import PlaceMismatch, PlaceNotFound
from harness.farm.jobqueue import JobQueue
from harness.farm.jobs import board_targets
from harness.farm.lgsession import PlaceInfo, Resource, Snapshot, _snapshot
from harness.farm.profile import (
    FarmBoard,
    available,
    candidates,
    check_fit,
    endpoint,
    load_farm_profile,
    place_resources,
)
from harness.farm.run import FarmSummary
from harness.pipeline.runner import Progress
from harness.suite import Suite

BOARD = "qemu-mps2-an386"


def _serial(exporter: str, group: str, port: int, proto: str = "raw", avail: bool = True) -> Resource:
    params = {
        "host": "10.0.0.9",
        "port": port,
        "protocol": proto,
        "speed": 115200,
        "extra": {"proxy": "rack1"},
    }
    return Resource(exporter, group, "NetworkSerialPort", "NetworkSerialPort", params, avail, None)


def _snap(places: dict[str, PlaceInfo], resources: list[Resource]) -> Snapshot:
    return Snapshot(places, resources, "me/root")


def _place(name: str, matches: list[str], tags: dict[str, str] | None = None) -> PlaceInfo:
    return PlaceInfo(name, tags or {}, matches, None)


def test_endpoint_gives_a_socket_url_and_the_exporter_host() -> None:
    snap = _snap(
        {"a": _place("a", ["exp1/g0/NetworkSerialPort"], {"board": BOARD})}, [_serial("exp1", "g0", 5601)]
    )
    ep = endpoint(snap, "a", BOARD)
    assert ep is not None and ep.url == "socket://10.0.0.9:5601"
    assert ep.exporter == "exp1" and ep.host == "rack1"
    assert ep.provenance()["farm_place"] == "a"


def test_ser2net_ports_are_rfc2217_urls() -> None:
    snap = _snap({"a": _place("a", ["exp1/*/NetworkSerialPort"])}, [_serial("exp1", "tty", 40001, "rfc2217")])
    ep = endpoint(snap, "a", BOARD)
    assert ep is not None and ep.url == "rfc2217://10.0.0.9:40001?ign_set_control"
    unacquired = Resource(
        "exp1", "tty", "NetworkSerialPort", "NetworkSerialPort", {"host": "h", "port": None}, True, None
    )
    snap2 = _snap(snap.places, [unacquired])  # ser2net starts on acquire: no port yet, but it fits
    check_fit(snap2, "a", BOARD)
    with pytest.raises(PlaceMismatch, match="no host/port yet"):
        endpoint(snap2, "a", BOARD)


@pytest.mark.parametrize(
    ("matches", "tags", "resources", "words"),
    [
        (
            ["exp1/g0/PowerPort"],
            {},
            [Resource("exp1", "g0", "PowerPort", "PowerPort", {}, True, None)],
            ["needs one serial port", "add-match"],
        ),
        (
            ["exp1/*/NetworkSerialPort"],
            {},
            [_serial("exp1", "g0", 1), _serial("exp1", "g1", 2)],
            ["2 serial ports", "narrow"],
        ),
        (
            ["exp1/g0/NetworkSerialPort"],
            {"board": "nucleo-l4r5zi"},
            [_serial("exp1", "g0", 1)],
            ["tagged board=nucleo-l4r5zi", "set-tags board=qemu-mps2-an386"],
        ),
    ],
)
def test_a_place_that_does_not_fit_the_board_is_refused_with_the_fix(
    matches: list[str], tags: dict[str, str], resources: list[Resource], words: list[str]
) -> None:
    snap = _snap({"p": _place("p", matches, tags)}, resources)
    with pytest.raises(PlaceMismatch) as e:
        check_fit(snap, "p", BOARD)
    for w in words:
        assert w in str(e.value)


def test_an_offline_place_is_not_a_misfit_but_not_available() -> None:
    snap = _snap({"p": _place("p", ["gone/g0/NetworkSerialPort"], {"board": BOARD})}, [])
    check_fit(snap, "p", BOARD)  # its exporter may come back
    assert not available(snap, "p")
    snap2 = _snap(snap.places, [_serial("gone", "g0", 1, avail=False)])
    assert place_resources(snap2, snap2.places["p"]) and not available(snap2, "p")


def test_candidates_by_tag_or_by_name() -> None:
    places = {
        "a": _place("a", [], {"board": BOARD}),
        "b": _place("b", [], {"board": "other"}),
        "c": _place("c", [], {"board": BOARD}),
    }
    snap = _snap(places, [])
    assert candidates(snap, FarmBoard(board=BOARD, tags={"board": BOARD})) == ["a", "c"]
    assert candidates(snap, FarmBoard(board=BOARD, places=["c", "b"])) == ["c", "b"]
    with pytest.raises(PlaceNotFound, match="known places: a, b, c"):
        candidates(snap, FarmBoard(board=BOARD, places=["nope"]))


def test_farm_profile_file(tmp_path: Path) -> None:
    p = tmp_path / "farm.toml"
    p.write_text(f'coordinator = "h:1"\n[[boards]]\nboard = "{BOARD}"\nplaces = ["x"]\n')
    prof = load_farm_profile(p)
    assert prof.coordinator == "h:1" and prof.board(BOARD).places == ["x"]
    assert prof.board("other").tags == {"board": "other"}  # default: by tag
    p.write_text('[[boards]]\nboard = "b"\nplace = "x"\n')
    with pytest.raises(ConfigError, match="place"):
        load_farm_profile(p)
    with pytest.raises(ConfigError, match="not found"):
        load_farm_profile(tmp_path / "missing.toml")


def _suite(targets: list[dict[str, Any]]) -> Suite:
    return Suite(
        suite={"name": "s"},
        tasks=[{"name": "t", "recipe": "digits_mlp", "min_accuracy": 0.5}],
        variants=[{"name": "fp32", "technique": "fp32"}],
        targets=targets,
    )


def test_only_board_targets_go_to_the_farm() -> None:
    ok = {"name": "m4", "kind": "mcu", "board": BOARD}
    assert board_targets(_suite([ok])) == [ok]
    notes: list[str] = []

    class _P(Progress):
        def note(self, text: str) -> None:
            notes.append(text)

    cpu = {"name": "cpu", "kind": "cpu", "runtime": "ort"}
    assert board_targets(_suite([ok, cpu]), _P()) == [ok]
    assert "frugalbench run SUITE --target cpu" in notes[0]
    with pytest.raises(ConfigError, match="no board target"):
        board_targets(_suite([cpu]))
    with pytest.raises(ConfigError, match="remove 'port'"):
        board_targets(_suite([{**ok, "port": "/dev/ttyACM0"}]))


class _J:
    def __init__(self, key: str, board: str) -> None:
        self.key, self.board, self.label = key, board, key


def test_queue_keeps_workers_waiting_while_a_job_may_come_back() -> None:
    q = JobQueue([_J("a", "b1"), _J("b", "b1")])  # type: ignore[list-item]
    j1 = q.take("b1")
    assert j1 is not None
    q.start(j1, "p1")
    j2 = q.take("b1")
    assert j2 is not None and q.take("other") is None
    q.start(j2, "p2")
    got: list[Any] = []
    th = threading.Thread(target=lambda: got.append(q.take("b1")))
    th.start()  # nothing queued, but j1 is running: the worker waits
    q.finish(j1, requeue=True)  # its place was lost: back to the queue
    th.join(10)
    assert got == [j1]
    q.finish(j1)
    q.finish(j2)
    assert q.empty() and q.take("b1") is None


names = st.text(alphabet="abcxyz-_0189", min_size=1, max_size=6)


@given(names, names, names, names, st.lists(st.sampled_from(["*", "x*", "a", "?"]), min_size=3, max_size=4))
def test_match_patterns_follow_labgrid_globbing(
    exp: str, grp: str, cls: str, name: str, pat: list[str]
) -> None:
    res = Resource(exp, grp, name, cls, {"host": "h", "port": 1}, True, None)
    place = _place("p", ["/".join(pat)])
    want = all(fnmatchcase(h, p) for h, p in zip((exp, grp, cls, name), pat, strict=False))
    assert bool(place_resources(_snap({"p": place}, [res]), place)) == want


def test_bridge_reply_parsing_tolerates_missing_fields() -> None:
    snap = _snapshot({"places": {"a": {"tags": None}}, "resources": []}, "me/x")
    assert snap.places["a"].matches == [] and snap.places["a"].acquired is None and snap.me == "me/x"


def test_summary_gives_the_median_job_time_per_place_and_none_where_nothing_ran() -> None:
    s = FarmSummary(run_id=1, job_s={"a-0": [3.0, 1.0, 2.0], "a-1": [1.0, 2.0]})
    assert s.per_job_s("a-0") == 2.0 and s.per_job_s("a-1") == 1.5
    assert s.per_job_s("a-2") is None  # unknown, not 0
