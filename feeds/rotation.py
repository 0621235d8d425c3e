"""Deduplication of the two sockets of a make-before-break rotation (FEEDS.md §4 A.1).

While a connection rotates, the old socket (``old``) and its replacement (``new``) are both
subscribed to the same streams and both receive the frames published after the new socket's
SUBSCRIBE took effect. :class:`Overlap` decides, frame by frame, what goes downstream so that
every stream is delivered exactly once and in order across the swap.

Per stream, Binance sends the frames of one socket in publication order, and every frame
published while both sockets are subscribed goes to both. So the old socket's frames are the
stream's sequence up to its close, and the new socket's frames are the same sequence from its
subscription on (a suffix). The scheme, per stream:

* Until the stream is **switched**, the old socket delivers and the new socket's frames are
  held back. Frames are identified by the stream's sequence field (:func:`frame_key`).
* The stream switches at the first frame both sockets delivered (the **match**):

  - a new frame the old socket already delivered: the old frames delivered after it are
    the duplicates the new socket sends next; they are dropped as they arrive (checked
    against their keys), and everything after them is delivered from the new socket;
  - an old frame equal to the first held-back new frame: it is delivered (from the old
    socket), and the new frames held behind it, which the old socket has not delivered yet,
    follow at once.

  From then on the old socket's frames of that stream are dropped.
* When the old socket has been closed and read to its end (:meth:`Overlap.old_finished`) it
  has delivered everything published before the server processed its close, which came after
  the new SUBSCRIBE was acknowledged, so nothing can be missing between the two: held-back
  new frames are delivered, and a stream still without a match switches on the new socket's
  next frame (still dropping it and what follows if the old socket had delivered them).

IO-free and synchronous; O(1) per frame except a bounded scan of the stream's recent history
when the new socket's frame first meets it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import msgspec

from feeds.routing import parse_stream

logger = logging.getLogger(__name__)

HISTORY = 4096
"""Keys of old-socket frames remembered per stream: how far the new socket may lag behind."""


class _AggTradeId(msgspec.Struct):
    a: int  # aggregate trade id


class _TradeId(msgspec.Struct):
    t: int  # trade id


class _UpdateId(msgspec.Struct):
    u: int  # final update id (depth, bookTicker)


class _SymbolUpdateId(msgspec.Struct):
    s: str
    u: int  # per symbol: all-market ``!bookTicker`` interleaves symbols


class _EventTime(msgspec.Struct):
    E: int  # event time, ms UTC


_DECODERS: dict[str, msgspec.json.Decoder[msgspec.Struct]] = {
    "aggTrade": msgspec.json.Decoder(_AggTradeId),
    "trade": msgspec.json.Decoder(_TradeId),
    "depth": msgspec.json.Decoder(_UpdateId),
    "partialDepth": msgspec.json.Decoder(_UpdateId),
    "bookTicker": msgspec.json.Decoder(_UpdateId),
    "!bookTicker": msgspec.json.Decoder(_SymbolUpdateId),
    "kline": msgspec.json.Decoder(_EventTime),
    "markPrice": msgspec.json.Decoder(_EventTime),
}


def frame_key(stream: str, data: bytes) -> Hashable:
    """Identity of one payload of ``stream``, the same for the same event on any socket.

    aggTrade: ``a``; trade: ``t``; diff and partial depth, bookTicker: ``u`` (``(s, u)`` on
    ``!bookTicker``); kline and markPrice: event time ``E`` (ms UTC). Other streams (arrays,
    liquidations, tickers), and payloads without the field, use the payload bytes. Never
    raises.
    """
    try:
        decoder = _DECODERS.get(parse_stream(stream).key)
    except ValueError:
        decoder = None
    if decoder is not None:
        try:
            return msgspec.structs.astuple(decoder.decode(data))
        except msgspec.DecodeError:
            pass
    return bytes(data)


@dataclass(frozen=True, slots=True)
class Frame:
    """One data frame as the reader got it (what the frame handler receives)."""

    stream: str
    data: msgspec.Raw
    recv_time: int  # local receive time, ms UTC
    raw: str | bytes


class Overlap:
    """Per-stream choice of the delivering socket during one rotation (module docstring).

    Args:
        streams: The streams the new socket subscribed. Other streams pass through from the
            old socket and, later, from the new one.
    """

    def __init__(self, streams: Iterable[str]) -> None:
        self.streams = frozenset(streams)
        self._old_keys: dict[str, deque[Hashable]] = {
            s: deque(maxlen=HISTORY) for s in self.streams
        }
        self._held: dict[str, deque[tuple[Hashable, Frame]]] = {}
        self._skip: dict[str, deque[Hashable]] = {}
        self.switched: set[str] = set()
        """Streams delivered from the new socket now."""
        self.matched = 0
        """Streams switched at a frame both sockets delivered (the rest switched after the
        old socket finished)."""
        self.duplicates = 0
        """Frames dropped because the other socket had delivered them."""
        self.old_done = False

    # ---------------------------------------------------------------- inputs

    def from_old(self, frame: Frame) -> list[Frame]:
        """A frame read from the old socket; returns the frames to deliver, in order."""
        stream = frame.stream
        if stream not in self.streams:
            return [frame]
        if stream in self.switched:
            self.duplicates += 1
            return []
        key = frame_key(stream, frame.data)
        self._old_keys[stream].append(key)
        out = [frame]
        held = self._held.get(stream)
        if held and held[0][0] == key:
            # The old socket caught up with the new one: what the new socket holds after this
            # frame is the continuation.
            held.popleft()
            self.duplicates += 1
            out.extend(f for _, f in held)
            del self._held[stream]
            self._switch(stream, matched=True)
        return out

    def from_new(self, frame: Frame) -> list[Frame]:
        """A frame read from the new socket; returns the frames to deliver, in order."""
        stream = frame.stream
        if stream not in self.streams:
            return [frame]
        if stream in self.switched:
            skip = self._skip.get(stream)
            if not skip:
                return [frame]
            key = frame_key(stream, frame.data)
            if skip[0] == key:
                skip.popleft()
                if not skip:
                    del self._skip[stream]
                self.duplicates += 1
                return []
            # One socket never reorders a stream; if it happens, delivering beats dropping.
            logger.warning(
                "%s: new socket's frame %r is not the expected duplicate %r", stream, key, skip[0]
            )
            del self._skip[stream]
            return [frame]
        key = frame_key(stream, frame.data)
        held = self._held.get(stream)
        if not held:
            history = self._old_keys[stream]
            if key in history:
                # The old socket already delivered this frame and maybe a few more: those
                # are what the new socket sends next.
                keys = list(history)
                index = len(keys) - 1 - keys[::-1].index(key)
                after = keys[index + 1 :]
                if after:
                    self._skip[stream] = deque(after)
                self.duplicates += 1
                self._switch(stream, matched=True)
                return []
            if self.old_done:
                # Everything the old socket will ever deliver is in: this frame is newer.
                self._switch(stream, matched=False)
                return [frame]
        self._held.setdefault(stream, deque()).append((key, frame))
        return []

    def old_finished(self) -> list[Frame]:
        """The old socket is closed and fully read; returns the held-back new frames to
        deliver (they follow the old socket's last frames)."""
        self.old_done = True
        out: list[Frame] = []
        for stream, held in self._held.items():
            out.extend(frame for _, frame in held)
            self._switch(stream, matched=False)
        self._held.clear()
        return out

    # ---------------------------------------------------------------- state

    def unmatched(self, streams: Iterable[str]) -> list[str]:
        """Those of ``streams`` not switched yet, sorted."""
        return sorted(set(streams) & self.streams - self.switched)

    @property
    def holding(self) -> bool:
        """Some new frames wait for the old socket to catch up."""
        return bool(self._held)

    @property
    def settled(self) -> bool:
        """Nothing left to deduplicate: the old socket is done, every stream switched and
        every expected duplicate seen."""
        return self.old_done and not self._skip and self.switched >= self.streams

    def _switch(self, stream: str, *, matched: bool) -> None:
        self.switched.add(stream)
        self._old_keys.pop(stream, None)
        if matched:
            self.matched += 1
