"""Run the in-process benchmarks: `python -m bench` (frame decode, order book structure).

The depth benchmark against cryptofeed runs separately (`python -m bench.depth`), since its
peer lives in its own virtualenv; `make bench` runs all three.
"""

from bench import decode, orderbook

if __name__ == "__main__":
    decode.main()
    orderbook.main()
