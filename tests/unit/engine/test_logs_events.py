"""json-file log reading and the event bus."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from skiff.engine.events import EventBus
from skiff.engine.logs import parse_time, read_logs


def _write(path: Path, entries: list[tuple[str, str, str]]) -> None:
    with open(path, "a") as f:
        for stream, t, text in entries:
            f.write(json.dumps({"log": text, "stream": stream, "time": t}) + "\n")


def test_read_logs_filters_streams_tail_and_time(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    _write(
        log,
        [
            ("stdout", "2024-01-01T00:00:01.000000001Z", "a\n"),
            ("stderr", "2024-01-01T00:00:02Z", "b\n"),
            ("stdout", "2024-01-01T00:00:03.5Z", "c\n"),
        ],
    )
    assert [d for _, _, d in read_logs(str(log))] == [b"a\n", b"b\n", b"c\n"]
    assert [d for _, _, d in read_logs(str(log), stderr=False)] == [b"a\n", b"c\n"]
    assert [d for _, _, d in read_logs(str(log), tail=1)] == [b"c\n"]
    assert [d for _, _, d in read_logs(str(log), tail=0)] == []
    since = parse_time("2024-01-01T00:00:02Z")
    assert [d for _, _, d in read_logs(str(log), since=since)] == [b"b\n", b"c\n"]
    assert [d for _, _, d in read_logs(str(log), until=since)] == [b"a\n", b"b\n"]


def test_follow_stops_when_container_stops(tmp_path: Path) -> None:
    log = tmp_path / "f-json.log"
    log.write_text("")
    running = threading.Event()
    running.set()
    got: list[bytes] = []

    def reader() -> None:
        for _, _, d in read_logs(str(log), follow=True, still_running=running.is_set):
            got.append(d)

    t = threading.Thread(target=reader)
    t.start()
    _write(log, [("stdout", "2024-01-01T00:00:01Z", "late\n")])
    time.sleep(0.3)
    running.clear()
    t.join(5)
    assert not t.is_alive() and got == [b"late\n"]


def test_event_bus_replays_since_and_filters(tmp_path: Path) -> None:
    bus = EventBus(tmp_path / "events.jsonl")
    start = time.time_ns()
    bus.publish("container", "create", "abc", {"name": "x", "image": "busybox"})
    bus.publish("image", "tag", "sha256:1", {"name": "y"})
    events = list(bus.subscribe(start, time.time_ns(), lambda e: e["Type"] == "container"))
    assert [(e["Action"], e["status"], e["from"]) for e in events] == [
        ("create", "create", "busybox")
    ]
    again = EventBus(tmp_path / "events.jsonl")  # the journal survives a restart
    assert len(list(again.subscribe(start, time.time_ns(), lambda e: True))) == 2


def test_read_logs_spans_rotated_files(tmp_path: Path) -> None:
    log = tmp_path / "r-json.log"
    _write(Path(f"{log}.2"), [("stdout", "2024-01-01T00:00:01Z", "one\n")])
    _write(Path(f"{log}.1"), [("stdout", "2024-01-01T00:00:02Z", "two\n")])
    _write(log, [("stdout", "2024-01-01T00:00:03Z", "three\n")])
    assert [d for _, _, d in read_logs(str(log))] == [b"one\n", b"two\n", b"three\n"]
    assert [d for _, _, d in read_logs(str(log), tail=2)] == [b"two\n", b"three\n"]


def test_follow_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "fr-json.log"
    _write(log, [("stdout", "2024-01-01T00:00:01Z", "before\n")])
    running = threading.Event()
    running.set()
    got: list[bytes] = []

    def reader() -> None:
        for _, _, d in read_logs(str(log), follow=True, still_running=running.is_set):
            got.append(d)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    log.rename(f"{log}.1")
    _write(log, [("stdout", "2024-01-01T00:00:02Z", "after\n")])
    time.sleep(0.4)
    running.clear()
    t.join(5)
    assert got == [b"before\n", b"after\n"]
