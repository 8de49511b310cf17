"""Cursors are signed and shape-checked: anything but a cursor this API issued is 422
`invalid_cursor` on every list endpoint, before a value can reach SQL (it used to be a 500)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from shared.pagination import (
    MAX_KEY_PARTS,
    cursor_signing_key,
    decode_cursor,
    encode_cursor,
)
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import deposit
from tests.security.routes import iter_routes

KEY = cursor_signing_key("a-test-secret-of-some-length")
OTHER_KEY = cursor_signing_key("another-secret-of-some-length")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # any int, unlike orjson


def _signed_raw(payload: bytes, key: bytes = KEY) -> str:
    """A correctly signed cursor around an arbitrary payload (as if the signing key leaked, or
    an endpoint issued something odd): the shape check must still hold."""
    return f"{_b64(payload)}.{_b64(hmac.new(key, payload, hashlib.sha256).digest()[:16])}"


def _old_style(value: Any) -> str:
    """What cursors looked like before they were signed: base64url(JSON) of the sort key."""
    return _b64(_dumps(value))


HOSTILE_KEYS: list[Any] = [
    ["a\u0000b"],
    [2**64],
    [2**63],
    [-(2**63) - 1],
    [1.5],
    [1e308],
    [True],
    [None],
    [{"id": "X"}],
    [["X"]],
    ["x" * 65],
    ["not an id!"],
    ["2026-13-45T99:99:99Z"],
    [],
    ["A"] * (MAX_KEY_PARTS + 1),
]


def test_a_cursor_round_trips_its_sort_key() -> None:
    for key in (["01HZX0ABCDEF"], [123], [2**63 - 1], ["2026-11-27T17:00:00Z", "ID_1-x"]):
        assert decode_cursor(encode_cursor(key, KEY), KEY) == key


def _refused(cursor: str, key: bytes = KEY) -> None:
    with pytest.raises(Exception) as info:
        decode_cursor(cursor, key)
    err = info.value
    assert getattr(err, "status", None) == 422 and err.code == "invalid_cursor", err  # type: ignore[attr-defined]
    assert err.errors == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]  # type: ignore[attr-defined]


def test_cursors_not_signed_with_the_key_are_refused() -> None:
    good = encode_cursor(["01HZX0ABCDEF"], KEY)
    _refused(good, OTHER_KEY)  # another deployment's secret (or a rotated token)
    body, tag = good.split(".")
    _refused(f"{body}.{tag[:-2]}AA")
    _refused(f"{_b64(_dumps([1, '01HZX0ABCDEG']))}.{tag}")  # changed key, old tag
    _refused(_old_style(["01HZX0ABCDEF"]))  # unsigned, as issued before
    for junk in ("", ".", "..", "a.b.c", "!!!.???", "=" * 8, "\u00e9.x", good + "=", " " + good):
        _refused(junk)


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=repr)
def test_signed_cursors_of_the_wrong_shape_are_refused(key: list[Any]) -> None:
    for version in (1, 2, 1.0, True, "1"):
        _refused(_signed_raw(_dumps([version, *key])) if key else _signed_raw(b"[1]"))
    _refused(_signed_raw(_dumps(key[0] if key else {})))  # not a list
    with pytest.raises(ValueError):
        encode_cursor(key, KEY)  # an endpoint can never issue one either


def test_non_json_signed_payloads_are_refused() -> None:
    for payload in (
        b"",
        b"[1,",
        b"\xff\xfe",
        b"[1, NaN]",
        b"[1, 1e999]",
        b"[1, 99999999999999999999999]",
    ):
        _refused(_signed_raw(payload))


# --------------------------------------------------------------------------- every list endpoint


def _list_routes(apps: dict) -> list[Any]:
    found = []
    for info in iter_routes(apps):
        if info.method != "GET":
            continue
        names = {p.alias for p in info.route.dependant.query_params}
        stack = list(info.route.dependant.dependencies)
        while stack:
            dep = stack.pop()
            names |= {p.alias for p in dep.query_params}
            stack.extend(dep.dependencies)
        if "cursor" in names:
            found.append(info)
    return found


@pytest.fixture(scope="module")
async def role_headers(workers_client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    return {
        "requester": requester.headers,
        "worker": worker.headers,
        "any": requester.headers,
        "optional": requester.headers,
        "none": {},
        "internal": {"X-Internal-Token": INTERNAL_TOKEN},
    }


def _hostile_cursors() -> list[str]:
    cursors = [_old_style(key) for key in HOSTILE_KEYS if key]
    cursors += [_signed_raw(_dumps([1, *key])) for key in HOSTILE_KEYS if key]
    cursors += ["garbage!", "a.b", _old_style({"nested": {"a": [1]}})]
    return cursors


async def test_every_list_endpoint_refuses_tampered_cursors_with_422(
    apps: dict,
    tasks_client: httpx.AsyncClient,
    workers_client: httpx.AsyncClient,
    payments_client: httpx.AsyncClient,
    role_headers: dict[str, dict[str, str]],
) -> None:
    clients = {"tasks": tasks_client, "workers": workers_client, "payments": payments_client}
    routes = _list_routes(apps)
    # Each service has lists; the walk must see them (a refactor that hides them fails here).
    assert {r.service for r in routes} == {"tasks", "workers", "payments"}, routes
    assert len(routes) >= 10, [r.path for r in routes]
    wrong: list[str] = []
    for info in routes:
        client = clients[info.service]
        for cursor in _hostile_cursors():
            resp = await client.get(
                info.url(), params={"cursor": cursor}, headers=role_headers[info.auth]
            )
            body = resp.json() if resp.headers.get("content-type", "").endswith("json") else {}
            if resp.status_code != 422 or body.get("code") != "invalid_cursor":
                wrong.append(
                    f"{info.service} GET {info.path} {cursor!r}: "
                    f"{resp.status_code} {resp.text[:200]}"
                )
    assert not wrong, "\n".join(wrong[:30])


async def test_an_overlong_cursor_is_a_422_before_it_is_decoded(
    tasks_client: httpx.AsyncClient, role_headers: dict[str, dict[str, str]]
) -> None:
    resp = await tasks_client.get(
        "/v1/projects", params={"cursor": "A" * 5000}, headers=role_headers["requester"]
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_issued_cursors_still_page_through_ids_and_integer_keys(
    workers_client: httpx.AsyncClient, payments_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    for amount in ("1.00", "2.00", "3.00"):
        await deposit(payments_client, requester, amount)
    # /v1/transactions: integer sort keys (ledger entry ids)
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        resp = await payments_client.get(
            "/v1/transactions", params=params, headers=requester.headers
        )
        assert resp.status_code == 200, resp.text
        seen += [e["id"] for e in resp.json()["items"]]
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            break
        assert "." in cursor  # signed
    assert len(seen) == len(set(seen)) >= 3
    # a cursor of one service is signed with the shared secret: another list takes it only if
    # its shape fits (an id-keyed list takes an int key harmlessly as "no row before it")
    resp = await payments_client.get(
        "/v1/transactions", params={"limit": 1}, headers=requester.headers
    )
    first = resp.json()["next_cursor"]
    body, tag = first.split(".")
    tampered = f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{tag}"
    resp = await payments_client.get(
        "/v1/transactions", params={"cursor": tampered}, headers=requester.headers
    )
    assert resp.status_code == 422 and resp.json()["code"] == "invalid_cursor", resp.text
