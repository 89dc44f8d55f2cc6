"""Ready-to-run calc server: ``python -m examples.calc --protocol jsonrpc --transport unix:///tmp/c.sock``."""

import sys

from faultlab.examples.serve import main

if __name__ == "__main__":
    sys.exit(main(["calc", *sys.argv[1:]], prog="python -m examples.calc"))
