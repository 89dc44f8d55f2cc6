"""Reference services (calc, kv) that suites, demos and tests run against."""
