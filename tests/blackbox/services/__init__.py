"""Small, deterministic services in other frameworks and languages (FastAPI, Node.js)."""
