"""Ready-to-run kv server: ``python -m examples.kv --protocol msgpackrpc --transport tcp://127.0.0.1:9000``."""

import sys

from faultlab.examples.serve import main

if __name__ == "__main__":
    sys.exit(main(["kv", *sys.argv[1:]], prog="python -m examples.kv"))
