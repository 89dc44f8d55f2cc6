from __future__ import annotations

import faultlab
import faultlab.errors
import faultlab.streams
import faultlab.transports


def test_all_lists_exist_without_repeats() -> None:
    for module in (faultlab, faultlab.errors, faultlab.streams, faultlab.transports):
        names = module.__all__
        assert len(names) == len(set(names)), f"{module.__name__}.__all__ repeats a name"
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_errors_have_one_root() -> None:
    for name in faultlab.errors.__all__:
        assert issubclass(getattr(faultlab.errors, name), faultlab.errors.FaultlabError)
