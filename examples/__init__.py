"""Reference services and clients; the services themselves live in ``faultlab.examples``."""
