"""Run every benchmark: `python -m bench`."""

from bench import decode

if __name__ == "__main__":
    decode.main()
