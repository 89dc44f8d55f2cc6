"""A small FastAPI app for black-box tests, run by uvicorn as a ``faultlab.Command``::

    python -m uvicorn tests.blackbox.services.fastapi_app:app --port {port}

- ``GET /health``: ``{"status": "ok"}``.
- ``GET /items/{id}``: ``{"id": id, "name": "item-<id>"}``.
- ``POST /orders`` (JSON body): a new order; with an ``Idempotency-Key`` header, the same
  key answers the same order and is applied once. ``GET /orders``: every order applied,
  with the key it was applied under (the side effects an idempotency oracle counts).
- ``GET /flaky?fail=N&key=K``: 503 with ``Retry-After: 1`` the first N times for key K,
  then 200 with the attempt number.

State lives in this process (one worker, async handlers on one loop): deterministic, and
gone on restart.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse

app = FastAPI()

_orders: list[dict[str, Any]] = []
_by_key: dict[str, dict[str, Any]] = {}
_flaky_calls: dict[str, int] = {}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, Any]:
    return {"id": item_id, "name": f"item-{item_id}"}


@app.post("/orders", status_code=201)
async def create_order(
    request: Request, idempotency_key: str | None = Header(default=None)
) -> dict[str, Any]:
    if idempotency_key is not None and idempotency_key in _by_key:
        return _by_key[idempotency_key]
    body = await request.json()
    order = {
        "id": len(_orders) + 1,
        "item": body.get("item"),
        "qty": body.get("qty", 1),
        "key": idempotency_key,
    }
    _orders.append(order)
    if idempotency_key is not None:
        _by_key[idempotency_key] = order
    return order


@app.get("/orders")
async def list_orders() -> list[dict[str, Any]]:
    return _orders


@app.get("/flaky")
async def flaky(fail: int = 1, key: str = "default") -> JSONResponse:
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    attempt = _flaky_calls[key]
    if attempt <= fail:
        return JSONResponse(
            {"error": "unavailable", "attempt": attempt},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    return JSONResponse({"ok": True, "attempt": attempt})
