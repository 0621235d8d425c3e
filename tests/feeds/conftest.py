"""Fixtures for the feed tests: recorded Binance frames and a loopback fake Binance server.

The fake server speaks Binance USDⓈ-M's combined-stream protocol on the routed paths
``/public/stream`` and ``/market/stream``: it answers SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS by id and streams real recorded frames (the cryptofeed capture) for the
streams subscribed on that socket. Like Binance, a stream subscribed on the wrong path is
ACKed and then never delivered. Faults are injected through the :class:`FakeConn` handles.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from connection_support import fast_config
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from feeds.base import FeedStats
from feeds.binance_futures import BinanceFuturesFeed
from feeds.config import EndpointConfig, FeedConfig
from feeds.events import FeedEvent, FeedState, FeedStatus

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BINANCE_WS = SHARED_DATA / "binance-usdm" / "ws"
CRYPTOFEED_CAPTURE = BINANCE_WS / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
CRYPTOFEED_SNAPSHOTS = BINANCE_WS / "cryptofeed" / "BINANCE_FUTURES.http.0.0"
HFTBACKTEST_DIR = BINANCE_WS / "hftbacktest"

ROUTED_PATHS = {"/public/stream": "public", "/market/stream": "market"}


@dataclass(frozen=True)
class RecordedFrame:
    """One line of a capture: local receive time (s), stream name, raw combined frame."""

    recv_ts: float
    stream: str
    raw: str


def read_cryptofeed_capture(path: Path = CRYPTOFEED_CAPTURE) -> list[RecordedFrame]:
    """Frames of a cryptofeed ``*.ws.N.0`` capture (header line skipped)."""
    frames = []
    with path.open(encoding="utf-8") as handle:
        header = handle.readline()
        assert " <-> " in header, f"{path}: unexpected header {header[:80]!r}"
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            stamp, _, raw = line.partition(": ")
            frames.append(RecordedFrame(float(stamp), json.loads(raw)["stream"], raw))
    return frames


def read_hftbacktest_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(<local ts>, <raw json>)`` per line of an hftbacktest ``*.gz`` capture."""
    with gzip.open(path, "rb") as handle:
        for line in handle:
            stamp, _, raw = line.rstrip(b"\n").partition(b" ")
            yield int(stamp), raw


@pytest.fixture(scope="session")
def cryptofeed_frames() -> list[RecordedFrame]:
    """The 1,535 frames of the 30 s Binance USDⓈ-M cryptofeed capture (4 symbols)."""
    return read_cryptofeed_capture()


@pytest.fixture(scope="session")
def hftbacktest_reader() -> Callable[[str], Iterator[tuple[int, bytes]]]:
    """``reader(file_name)`` → ``(<local ts>, <raw json>)`` lines of an hftbacktest capture."""
    return lambda name: read_hftbacktest_lines(HFTBACKTEST_DIR / name)


@pytest.fixture(scope="session")
def cryptofeed_snapshot_lines() -> list[tuple[str, str]]:
    """``(request url, raw json body)`` per REST depth snapshot of the cryptofeed capture."""
    out = []
    for line in CRYPTOFEED_SNAPSHOTS.read_text(encoding="utf-8").splitlines():
        if line:
            url, _, rest = line.partition(" -> ")
            out.append((url, rest.partition(": ")[2]))
    return out


def fake_route(stream: str) -> str:
    """The fake server's own route table (kept independent of ``feeds.routing``)."""
    kind = stream if stream.startswith("!") else stream.split("@", 1)[1]
    public = kind.startswith(("depth", "rpiDepth")) or kind in (
        "bookTicker",
        "!bookTicker",
        "trade",
    )
    return "public" if public else "market"


@dataclass
class FakeConn:
    """Server-side view of one client connection (fault-injection handle)."""

    route: str
    ws: ServerConnection
    opened_at: float
    closed_at: float | None = None
    controls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    subscribed: set[str] = field(default_factory=set)
    sent: list[str] = field(default_factory=list)
    muted: bool = False
    subscribed_once: asyncio.Event = field(default_factory=asyncio.Event)

    def methods(self, method: str) -> list[dict[str, Any]]:
        """Control messages of ``method`` in arrival order."""
        return [msg for _, msg in self.controls if msg.get("method") == method]

    def subscribe_params(self) -> set[str]:
        """Union of every SUBSCRIBE's params on this connection."""
        return {s for msg in self.methods("SUBSCRIBE") for s in msg.get("params", [])}

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (client sees 1006)."""
        self.ws.transport.abort()

    async def inject(self, text: str) -> None:
        """Send one raw text frame."""
        await self.ws.send(text)


class FakeBinance:
    """Loopback Binance USDⓈ-M combined-stream server replaying recorded frames.

    Args:
        frames: Recorded frames to play, in order, for the streams each socket subscribed.
        gap_s: Pause after every frame sent.
        loop: Replay the frames forever (else once per connection).
        autoplay: Stream recorded frames at all (off for injection-only tests).
    """

    def __init__(
        self,
        frames: list[RecordedFrame],
        *,
        gap_s: float = 0.002,
        loop: bool = True,
        autoplay: bool = True,
    ) -> None:
        self.frames = frames
        self.gap_s = gap_s
        self.loop = loop
        self.autoplay = autoplay
        self.connections: list[FakeConn] = []
        self.reject: dict[str, str] = {}
        """Stream → error message: SUBSCRIBEs containing it get an error response."""
        self.silent: set[str] = set()
        """Streams ACKed but never delivered."""
        self.forget_once: set[str] = set()
        """Streams ACKed, then missing from the subscription list and never delivered
        (until subscribed again)."""
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>`` (the WebSocket root)."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def on(self, route: str) -> list[FakeConn]:
        """Connections opened on ``/public`` or ``/market``, oldest first."""
        return [conn for conn in self.connections if conn.route == route]

    async def start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._check_path, max_size=2**24
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @staticmethod
    def _check_path(connection: ServerConnection, request: Request) -> Response | None:
        if request.path not in ROUTED_PATHS:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such route\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        conn = FakeConn(ROUTED_PATHS[ws.request.path], ws, time.monotonic())
        self.connections.append(conn)
        player = asyncio.create_task(self._play(conn))
        try:
            async for message in ws:
                arrived = time.monotonic()
                request = json.loads(message)
                conn.controls.append((arrived, request))
                await ws.send(json.dumps(self._answer(conn, request)))
        except ConnectionClosed:
            pass
        finally:
            conn.closed_at = time.monotonic()
            player.cancel()
            await asyncio.gather(player, return_exceptions=True)

    def _answer(self, conn: FakeConn, request: dict[str, Any]) -> dict[str, Any]:
        method, params, rid = request.get("method"), request.get("params", []), request["id"]
        if method == "SUBSCRIBE":
            for stream in params:
                if stream in self.reject:
                    return {"error": {"code": 2, "msg": self.reject[stream]}, "id": rid}
            for stream in params:
                if stream in self.forget_once:
                    self.forget_once.discard(stream)
                else:
                    conn.subscribed.add(stream)
            conn.subscribed_once.set()
            return {"result": None, "id": rid}
        if method == "UNSUBSCRIBE":
            conn.subscribed.difference_update(params)
            return {"result": None, "id": rid}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.subscribed), "id": rid}
        return {"error": {"code": 0, "msg": f"Unknown method {method}"}, "id": rid}

    def _delivers(self, conn: FakeConn, stream: str) -> bool:
        return (
            stream in conn.subscribed
            and fake_route(stream) == conn.route
            and stream not in self.silent
        )

    async def _play(self, conn: FakeConn) -> None:
        if not self.autoplay:
            return
        await conn.subscribed_once.wait()
        while True:
            for frame in self.frames:
                if conn.muted:
                    await asyncio.sleep(self.gap_s or 0.002)
                    continue
                if not self._delivers(conn, frame.stream):
                    continue
                await conn.ws.send(frame.raw)
                conn.sent.append(frame.raw)
                await asyncio.sleep(self.gap_s)
            if not self.loop:
                return
            await asyncio.sleep(self.gap_s or 0.002)


@pytest.fixture
async def fake_binance() -> AsyncIterator[Callable[..., Awaitable[FakeBinance]]]:
    """Factory ``await fake_binance(frames, **options)`` → a started :class:`FakeBinance`;
    every server is stopped at teardown."""
    servers: list[FakeBinance] = []

    async def _make(frames: list[RecordedFrame], **options: Any) -> FakeBinance:
        server = FakeBinance(frames, **options)
        await server.start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        await server.stop()


@pytest.fixture
def config_factory() -> Callable[..., FeedConfig]:
    """``config_factory(**overrides)`` → :func:`fast_config`."""
    return fast_config


class FeedRun:
    """A running :class:`BinanceFuturesFeed` with every event it delivered."""

    def __init__(self, feed: BinanceFuturesFeed) -> None:
        self.feed = feed
        self.events: list[FeedEvent] = []
        self.task: asyncio.Task[None] = asyncio.create_task(feed.run(self.events.append))

    @property
    def stats(self) -> FeedStats:
        return self.feed.stats

    def statuses(
        self, state: FeedState | None = None, connection: str | None = None
    ) -> list[FeedStatus]:
        """Statuses delivered so far, optionally filtered."""
        return [
            event
            for event in self.events
            if isinstance(event, FeedStatus)
            and (state is None or event.state is state)
            and (connection is None or event.connection == connection)
        ]

    def market(self) -> list[FeedEvent]:
        """Market events (everything but statuses) delivered so far."""
        return [event for event in self.events if not isinstance(event, FeedStatus)]

    async def stop(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def start_feed() -> AsyncIterator[Callable[..., FeedRun]]:
    """``start_feed(ws_url, streams, config)`` → a :class:`FeedRun`; stopped at teardown."""
    runs: list[FeedRun] = []

    def _start(ws_url: str, streams: list[str], config: FeedConfig, **kwargs: Any) -> FeedRun:
        feed = BinanceFuturesFeed(EndpointConfig(ws_url=ws_url), config, **kwargs)
        feed.set_streams(streams)
        run = FeedRun(feed)
        runs.append(run)
        return run

    yield _start
    for run in runs:
        await run.stop()


async def wait_until(
    predicate: Callable[[], bool], within_s: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` every 10 ms until true; fail the test after ``within_s`` s."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """The :func:`wait_until` helper as a fixture."""
    return wait_until
