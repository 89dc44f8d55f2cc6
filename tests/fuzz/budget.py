"""How many inputs a fuzz test tries: a CI share by default, the full count in slow mode.

Slow mode is ``FAULTLAB_SLOW=1`` (``make fuzz`` sets it). CI runs the small share so the
whole suite stays inside its time budget; the slow counts are what the issue notes quote.
"""

from __future__ import annotations

import os

__all__ = ["SLOW", "budget"]

SLOW = os.environ.get("FAULTLAB_SLOW", "") not in ("", "0")


def budget(ci: int, slow: int) -> int:
    """``slow`` in slow mode, else ``ci``; ``FAULTLAB_FUZZ_SCALE`` multiplies either."""
    scale = float(os.environ.get("FAULTLAB_FUZZ_SCALE", "1"))
    return max(1, int((slow if SLOW else ci) * scale))
