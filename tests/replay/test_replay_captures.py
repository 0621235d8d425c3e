"""Capture loaders (cryptofeed, hftbacktest, perpscope recordings) on the real captures."""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import logging
from pathlib import Path

import pytest
from replay_data import CRYPTOFEED_WS, HFT

from feeds.replay.captures import Capture, CaptureFrame, split_envelope
from feeds.replay.errors import ReplayDataError
from feeds.replay.recording import RecordingWriter, iter_recording, read_header
from feeds.replay.wire import route_of


def _kinds(frames: list[CaptureFrame]) -> collections.Counter[str]:
    return collections.Counter(f.stream.split("@", 1)[1] for f in frames)


def test_cryptofeed_capture_and_sibling_snapshots() -> None:
    capture = Capture(CRYPTOFEED_WS)
    frames = list(capture.frames())
    assert len(frames) == 1535
    assert _kinds(frames) == {"depth@100ms": 764, "bookTicker": 613, "aggTrade": 91, "kline_1m": 67}
    assert frames[0].recv_ms == 1626992741062  # 1626992741.06217 s
    assert all(a.recv_ms <= b.recv_ms for a, b in itertools.pairwise(frames))
    snaps = capture.depth_snapshots()
    assert [(s.symbol, json.loads(s.body)["lastUpdateId"]) for s in snaps] == [
        ("SUSHIUSDT", 600859605926),
        ("AKROUSDT", 600859605486),
        ("KEEPUSDT", 600859619434),
        ("CTKUSDT", 600859618836),
    ]
    assert capture.skipped_lines == 0


def test_hftbacktest_ns_and_us_timestamps_and_snapshot() -> None:
    ns = Capture(HFT / "btcusdt_20240718.gz")
    frames = list(ns.frames())
    assert len(frames) == 11414 - 1  # one line is the REST snapshot
    assert frames[0].recv_ms == 1721347020984  # 1721347020984480942 ns
    (snap,) = ns.depth_snapshots()
    assert snap.symbol == "BTCUSDT" and snap.recv_ms == 1721347021282
    assert json.loads(snap.body)["lastUpdateId"] == 4984028384061
    us = Capture(HFT / "btcusdt_20230404.dat.gz")
    us_frames = list(us.frames())
    assert us_frames[0].recv_ms == 1680652700424  # 1680652700423575 µs
    assert _kinds(us_frames) == {
        "depth@0ms": 4322,
        "bookTicker": 6765,
        "trade": 2197,
        "markPrice@1s": 99,
    }
    # The raw frames are untouched: the diff-depth pu chain is gap-free.
    prev = None
    for frame in us_frames:
        if frame.stream.endswith("@depth@0ms"):
            _, data = split_envelope(frame.raw)
            body = json.loads(data)
            if prev is not None:
                assert body["pu"] == prev
            prev = body["u"]


def test_folder_merges_files_by_receive_time() -> None:
    capture = Capture(HFT)
    assert len(capture.files) == 6
    previous = 0
    count = 0
    for frame in capture.frames():
        assert frame.recv_ms >= previous
        previous = frame.recv_ms
        count += 1
    assert count == 215659
    assert {s.symbol for s in capture.depth_snapshots()} == {"BTCUSDT", "ETHUSDT"}


def test_recording_round_trip(tmp_path: Path) -> None:
    source = Capture(CRYPTOFEED_WS)
    frames = list(source.frames())[:300]
    snaps = source.depth_snapshots()
    path = tmp_path / "session.rec.gz"
    with RecordingWriter(path, ws_url="wss://fstream.binance.com", started_ms=1626992740000) as rec:
        for frame in frames:
            rec.write_frame(route_of(frame.stream), frame.recv_ms, frame.raw)
        for snap in snaps:
            rec.write_rest("depth", snap.symbol, snap.recv_ms, snap.body)
    header = read_header(path)
    assert header["format"] == "perpscope-rec" and header["version"] == 1
    assert header["ws_url"] == "wss://fstream.binance.com" and header["started"] == 1626992740000
    loaded = Capture(path)
    assert loaded.files[0].kind == "recording"
    assert list(loaded.frames()) == frames
    assert [(s.recv_ms, s.symbol, s.body) for s in loaded.depth_snapshots()] == [
        (s.recv_ms, s.symbol, s.body) for s in snaps
    ]


def test_recording_cut_by_abrupt_stop_is_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frames = list(Capture(CRYPTOFEED_WS).frames())[:400]
    path = tmp_path / "cut.rec.gz"
    writer = RecordingWriter(path, flush_interval_s=3600)
    for frame in frames[:250]:
        writer.write_frame("public", frame.recv_ms, frame.raw)
    writer.flush()
    for frame in frames[250:]:
        writer.write_frame("public", frame.recv_ms, frame.raw)  # still in memory
    on_disk = path.read_bytes()  # what survives a kill now: no gzip trailer
    with pytest.raises(TypeError, match="recv_ms must be an int"):
        writer.write_frame(frames[0].recv_ms, "public", frames[0].raw)  # type: ignore[arg-type]
    writer.close()
    cut = tmp_path / "killed.rec.gz"
    cut.write_bytes(on_disk)
    with caplog.at_level(logging.WARNING):
        lines = list(iter_recording(cut))
    assert [line.raw for line in lines] == [f.raw for f in frames[:250]]
    assert any("abruptly" in r.getMessage() for r in caplog.records)
    # Cut in the middle of a line: the partial line is dropped, the rest kept.
    whole = path.read_bytes()
    raw_text = gzip.decompress(whole)
    half = raw_text[: len(raw_text) // 2]
    partial = tmp_path / "partial.rec.gz"
    partial.write_bytes(gzip.compress(half))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        kept = list(iter_recording(partial))
    assert 0 < len(kept) < 400
    assert [line.raw for line in kept] == [f.raw for f in frames[: len(kept)]]
    assert any("truncated last line" in r.getMessage() for r in caplog.records)


def test_not_a_capture_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(ReplayDataError, match=r"junk\.gz: cannot read as gzip"):
        list(Capture(junk).frames())
    readme = tmp_path / "readme.txt"
    readme.write_text("hello\n")
    with pytest.raises(ReplayDataError, match=r"readme\.txt: not a known capture format"):
        Capture(readme)
    bad_header = tmp_path / "bad.rec.gz"
    bad_header.write_bytes(gzip.compress(b'{"format":"other"}\n1\tpublic\t{}\n'))
    with pytest.raises(ReplayDataError, match="header does not say format"):
        read_header(bad_header)
