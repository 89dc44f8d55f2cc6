"""faultlab: resilience testing for RPC and IPC services.

The public API a user imports: ``faultlab.Lab`` (provisioning), ``faultlab.serve``
(serve a Python object over an RPC protocol), ``faultlab.Command``, ``faultlab.Address`` and
``faultlab.Image`` (black-box services: a program faultlab runs, a service already running,
a local container image) with their readiness checks ``faultlab.ready``,
``faultlab.oracles`` (property checks over a journal), ``faultlab.strategies`` (Hypothesis
strategies), plus the stream types and transports. ``Lab``, ``serve``, ``Command``,
``Address``, ``Image``, ``ready``, ``oracles`` and ``strategies`` are imported on first use
(PEP 562), so ``import faultlab`` stays cheap: Hypothesis, for one, is only imported by
``faultlab.strategies``.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from faultlab import errors, transports
from faultlab.streams import ByteStream, Listener, MessageStream

if _typing.TYPE_CHECKING:
    from faultlab import oracles, strategies
    from faultlab.lab import Lab
    from faultlab.lab import readiness as ready
    from faultlab.lab.services import Address, Command, Image
    from faultlab.rpc.server import serve

__all__ = [
    "Address",
    "ByteStream",
    "Command",
    "Image",
    "Lab",
    "Listener",
    "MessageStream",
    "__version__",
    "errors",
    "oracles",
    "ready",
    "serve",
    "strategies",
    "transports",
]

__version__ = "0.1.0"

_LAZY: dict[str, tuple[str, str | None]] = {
    "Lab": ("faultlab.lab", "Lab"),
    "serve": ("faultlab.rpc.server", "serve"),
    "oracles": ("faultlab.oracles", None),
    "strategies": ("faultlab.strategies", None),
    "Command": ("faultlab.lab.services", "Command"),
    "Address": ("faultlab.lab.services", "Address"),
    "Image": ("faultlab.lab.services", "Image"),
    "ready": ("faultlab.lab.readiness", None),
}
"""Public name -> (module, attribute; None for the module itself), imported on first use.
(The module's helpers are imported under ``_`` names: every public name is in ``__all__``.)"""


def __getattr__(name: str) -> _typing.Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'faultlab' has no attribute {name!r}") from None
    module = _importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
