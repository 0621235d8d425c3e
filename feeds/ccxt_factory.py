"""ccxt client factory: an async ``binanceusdm`` whose USDⓈ-M REST calls go to a chosen base URL.

The same function builds the live client (``https://fapi.binance.com``) and the replay client
(``http://127.0.0.1:PORT`` from :class:`feeds.replay.server.ReplayServer`), so backfill code
does not know which one it talks to.
"""

from __future__ import annotations

import ccxt.async_support as ccxt_async

FAPI_URL_KEYS: dict[str, str] = {
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
}
"""ccxt 4.5 ``urls['api']`` keys of the USDⓈ-M futures API and their path under the REST base."""


def make_binanceusdm(rest_url: str, timeout_s: float) -> ccxt_async.binanceusdm:
    """Async ccxt ``binanceusdm`` client whose USDⓈ-M endpoints use ``rest_url``.

    Only the USDⓈ-M (``fapi``) URLs are rewritten. ``load_markets()`` fetches only linear
    (USDⓈ-M) markets, and currencies are not fetched (that endpoint is a spot/SAPI one), so
    ``load_markets``, ``fetch_tickers``, ``fetch_ohlcv``, ``fetch_order_book`` and
    ``fetch_funding_rate(s)`` touch ``rest_url`` only. ccxt's own rate limiter stays on.
    The caller owns the client and must ``await client.close()``.

    Args:
        rest_url: REST base, e.g. ``https://fapi.binance.com`` or ``http://127.0.0.1:PORT``
            (no trailing path; a trailing ``/`` is ignored).
        timeout_s: Timeout of one HTTP request, seconds.

    Returns:
        The configured client (not yet connected; no request is made here).

    Raises:
        ValueError: ``rest_url`` is not http(s) or ``timeout_s`` is not positive.
    """
    base = rest_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"rest_url must start with http:// or https://, got {rest_url!r}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    client = ccxt_async.binanceusdm(
        {
            "enableRateLimit": True,
            "timeout": int(timeout_s * 1000),
            "options": {
                "defaultType": "future",
                "fetchMarkets": {"types": ["linear"]},
                "fetchCurrencies": False,
                "adjustForTimeDifference": False,
            },
        }
    )
    client.has["fetchCurrencies"] = False
    api = dict(client.urls["api"])
    for key, suffix in FAPI_URL_KEYS.items():
        api[key] = base + suffix
    client.urls["api"] = api
    return client
