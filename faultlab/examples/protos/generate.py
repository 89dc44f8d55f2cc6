"""Regenerate the calc example's protobuf and gRPC modules: ``python -m
faultlab.examples.protos.generate``.

The ``.proto`` files are compiled from the source root, so the generated stubs
import their messages as ``faultlab.examples.protos.calc_v1_pb2`` (a bare
``import calc_v1_pb2`` would only work with this folder on ``sys.path``). The
output is committed, so users need only ``grpcio`` and ``protobuf`` at run
time; regenerating needs ``grpcio-tools`` (the ``grpc`` extra).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

__all__ = ["PROTOS", "generate"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PROTOS = ("calc_v1.proto", "calc_v2.proto")


def generate(protos: Sequence[str] = PROTOS) -> None:
    """Run grpc_tools' bundled protoc on ``protos`` (names in this folder)."""
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ImportError:
        raise SystemExit("regenerating needs grpcio-tools: pip install 'faultlab[grpc]'") from None
    well_known = resources.files("grpc_tools") / "_proto"
    for name in protos:
        source = (HERE / name).relative_to(ROOT)
        args = [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{well_known}",
            f"--python_out={ROOT}",
            f"--grpc_python_out={ROOT}",
            str(source),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {source}")
        print(f"generated {source.with_suffix('')}_pb2.py and _pb2_grpc.py")


if __name__ == "__main__":
    generate(sys.argv[1:] or PROTOS)
