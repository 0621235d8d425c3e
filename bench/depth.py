"""Local order-book throughput: depth diffs decoded and applied per second.

Workload: every ``depthUpdate`` frame of the recorded Binance USDⓈ-M sessions (hftbacktest
BTC 2023, BTC 2024, ETH 2024, the 4-symbol cryptofeed capture), fed in recorded order with
each symbol's recorded REST snapshot served when the book asks for it. Both sides do the
whole path from raw frame text to an updated book:

* perpscope: ``BinanceFrameDecoder`` (msgspec) + ``BookKeeper`` (sortedcontainers book,
  FEEDS.md §1.6 sync, trimmed to 1000 levels);
* cryptofeed 2.4.1: ``BinanceFutures.message_handler`` → ``_book`` / ``_check_update_id``
  (yapic.json with Decimal prices, its ``order_book`` C extension), no callbacks attached.

cryptofeed pins its own dependency tree, so it runs in a separate interpreter (``make bench``
builds ``.venv-bench``; or set ``CRYPTOFEED_PYTHON``) on the very same frames, written to a
temporary file by this process; this file is also its driver (``--cryptofeed``), importing
nothing from perpscope. Both books' final best bid/ask are compared, so a ratio is only
printed for equal results.

Target: perpscope ≥ 3x cryptofeed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
WS = DATA / "binance-usdm" / "ws"
EXCHANGE_INFO = DATA / "binance-usdm" / "rest" / "cryptofeed" / "BINANCE_FUTURES.0"
SESSIONS = {
    "btc-2023": ["hftbacktest/btcusdt_20230404.dat.gz", "hftbacktest/btcusdt_20230405.dat.gz"],
    "btc-2024": ["hftbacktest/btcusdt_20240718.gz", "hftbacktest/btcusdt_20240719.gz"],
    "eth-2024": ["hftbacktest/ethusdt_20240718.gz", "hftbacktest/ethusdt_20240719.gz"],
    "cryptofeed-4sym": ["cryptofeed/BINANCE_FUTURES.ws.1.0"],
}
REPEAT = 3

Session = dict[str, Any]  # {"frames": [raw depth frame, ...], "snapshots": {symbol: body}}
Top = dict[str, list[list[float]]]  # symbol → [[bid price, size], [ask price, size]]


def load_sessions() -> dict[str, Session]:
    """Depth frames (raw text, recorded order) and the first REST snapshot per symbol."""
    from feeds.replay.captures import Capture

    out: dict[str, Session] = {}
    for name, files in SESSIONS.items():
        frames: list[str] = []
        snapshots: dict[str, str] = {}
        for rel in files:
            capture = Capture(WS / rel)
            frames.extend(f.raw for f in capture.frames() if "@depth" in f.stream)
            for record in capture.depth_snapshots():
                snapshots.setdefault(record.symbol, record.body)
        out[name] = {"frames": frames, "snapshots": snapshots}
    return out


def run_perpscope(session: Session) -> Top:
    """Decode and apply every frame; returns each book's final top."""
    from feeds.binance_futures import BinanceFrameDecoder
    from feeds.binance_schemas import decode_depth_snapshot
    from feeds.book_sync import BookKeeper
    from feeds.config import BookConfig

    snapshots: dict[str, str] = session["snapshots"]
    pending: list[str] = []
    keeper = BookKeeper(BookConfig(), pending.append, lambda: 0)
    for symbol in snapshots:
        keeper.track(symbol)
    decode = BinanceFrameDecoder().decode_frame
    on_diff = keeper.on_diff
    for raw in session["frames"]:
        for event in decode(raw, 0)[1]:
            on_diff(event)  # type: ignore[arg-type]  # depth streams only yield DepthDiff
        if pending:
            for symbol in pending:
                keeper.on_snapshot(decode_depth_snapshot(symbol, snapshots[symbol]))
            pending.clear()
    top: Top = {}
    for symbol in snapshots:
        book = keeper.book(symbol)
        assert book is not None, f"{symbol}: not synced ({keeper.info(symbol)})"
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None
        top[symbol] = [list(bid), list(ask)]
    assert keeper.totals().gaps == 0 and keeper.totals().resyncs == 0
    return top


def run_cryptofeed(session: Session) -> Top:  # pragma: no cover - runs in .venv-bench
    """cryptofeed's Binance futures book path on the same frames (driver side)."""
    from cryptofeed.defines import ASK, BID, L2_BOOK
    from cryptofeed.exchanges import BinanceFutures
    from cryptofeed.symbols import Symbols

    if not Symbols.populated(BinanceFutures.id):
        line = EXCHANGE_INFO.read_text(encoding="utf-8").splitlines()[0]
        info = json.loads(line.partition(": ")[2])
        Symbols.set(BinanceFutures.id, *BinanceFutures._parse_symbol_data(info))
    snapshots: dict[str, str] = session["snapshots"]
    to_std = {exch: norm for norm, exch in Symbols.get(BinanceFutures.id)[0].items()}
    std = {s: to_std[s] for s in snapshots}
    feed = BinanceFutures(symbols=list(std.values()), channels=[L2_BOOK])

    async def read(address: str, **_: Any) -> str:
        symbol = address.split("symbol=", 1)[1].split("&", 1)[0]
        return snapshots[symbol]

    feed.http_conn.read = read  # the recorded REST snapshot instead of the network

    async def drive() -> None:
        handler = feed.message_handler
        for raw in session["frames"]:
            await handler(raw, None, 0.0)

    asyncio.run(drive())
    top: Top = {}
    for symbol, pair in std.items():
        book = feed._l2_book[pair].book
        bid, ask = book[BID].index(0), book[ASK].index(0)
        top[symbol] = [[float(bid[0]), float(bid[1])], [float(ask[0]), float(ask[1])]]
    return top


def best_time(fn: Any, session: Session) -> tuple[float, Top]:
    """Best wall time of ``REPEAT`` runs (seconds) and the run's result."""
    best, result = float("inf"), {}
    for _ in range(REPEAT):
        started = time.perf_counter()
        result = fn(session)
        best = min(best, time.perf_counter() - started)
    return best, result


def cryptofeed_python() -> str | None:
    """Interpreter with cryptofeed installed: ``$CRYPTOFEED_PYTHON`` or ``.venv-bench``."""
    env = os.environ.get("CRYPTOFEED_PYTHON")
    if env:
        return env
    bench_venv = REPO / ".venv-bench" / "bin" / "python"
    return str(bench_venv) if bench_venv.exists() else None


def main() -> None:
    sessions = load_sessions()
    python = cryptofeed_python()
    peer: dict[str, Any] = {}
    if python is None:
        print("depth: cryptofeed side skipped (no .venv-bench; run `make bench`)")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "sessions.json"
            work.write_text(json.dumps(sessions), encoding="utf-8")
            done = subprocess.run(
                [python, __file__, "--cryptofeed", str(work)],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"cryptofeed side failed:\n{done.stderr[-2000:]}")
            peer = json.loads(done.stdout.strip().splitlines()[-1])
    total_frames = sum(len(s["frames"]) for s in sessions.values())
    print(f"depth: {total_frames:,} real depth diffs, decode + book apply, best of {REPEAT}")
    ours_all = peer_all = 0.0
    for name, session in sessions.items():
        n = len(session["frames"])
        ours, top = best_time(run_perpscope, session)
        ours_all += ours
        line = f"  {name:<16} {n:7,} diffs  perpscope {n / ours:10,.0f}/s"
        if name in peer:
            theirs, their_top = peer[name]
            peer_all += theirs
            if their_top != top:
                raise SystemExit(f"{name}: books differ at the end: {top} vs {their_top}")
            line += f"  cryptofeed {n / theirs:10,.0f}/s  perpscope is {theirs / ours:.2f}x"
        print(line)
    summary = f"  {'all':<16} {total_frames:7,} diffs  perpscope {total_frames / ours_all:10,.0f}/s"
    if peer:
        summary += (
            f"  cryptofeed {total_frames / peer_all:10,.0f}/s  "
            f"perpscope is {peer_all / ours_all:.2f}x (target >= 3x)"
        )
    print(summary)


def _cryptofeed_main(path: str) -> None:  # pragma: no cover - runs in .venv-bench
    sessions: dict[str, Session] = json.loads(Path(path).read_text(encoding="utf-8"))
    print(json.dumps({name: best_time(run_cryptofeed, s) for name, s in sessions.items()}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cryptofeed":
        _cryptofeed_main(sys.argv[2])
    else:
        main()
