"""``python -m faultlab.rpc.grpc serve ...``: see :mod:`faultlab.rpc.grpc.cli`."""

from faultlab.rpc.grpc.cli import main

raise SystemExit(main())
