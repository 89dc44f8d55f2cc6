"""Black-box services for tests: programs faultlab runs as a ``faultlab.Command``."""
