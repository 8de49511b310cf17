"""Hypothesis over the inputs a client controls most freely, against the real apps: cursors,
dates and numbers (query parameters and JSON numbers). Nothing may answer a 5xx; hostile input
answers a 4xx problem.

Generation is derandomized (a failure reproduces; set SECURITY_FUZZ_SEED to explore), drawn
first and sent from the async test (one event loop for the engine), and bounded for CI
(`SECURITY_FUZZ_EXAMPLES` scales the counts; the whole module takes ~20-40 s on 2 cores).
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from shared.app_factory import MAX_JSON_DEPTH, scan_json_text
from tests.conftest import INTERNAL_TOKEN
from tests.fixtures.accounts import create_requester, create_worker
from tests.fixtures.tasks import PROJECT_DEFAULTS
from tests.security.routes import RouteInfo, iter_routes

SCALE = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "12")) / 12
SEED = os.environ.get("SECURITY_FUZZ_SEED")


def _n(base: int) -> int:
    return max(1, int(base * SCALE))


def draw(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """n generated values (generation only, no shrinking), reproducible."""
    out: list[Any] = []

    @given(strategy)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=SEED is None,
    )
    def collect(value: Any) -> None:
        out.append(value)

    if SEED is not None:
        collect = seed(int(SEED))(collect)
    collect()
    return out


# --------------------------------------------------------------------------- strategies

_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
_anything_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)  # NUL and lone surrogates' neighbours included
    | _ids,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


cursors = st.one_of(
    st.text(max_size=120),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=", max_size=80
    ),
    _anything_json.map(lambda v: _b64(_json_bytes(v))),  # cursors as they used to be
    st.lists(_anything_json, min_size=1, max_size=5).map(lambda v: _b64(_json_bytes(v))),
    st.tuples(_anything_json, st.binary(max_size=24)).map(
        lambda t: f"{_b64(_json_bytes([1, t[0]]))}.{_b64(t[1])}"  # forged tag
    ),
    st.sampled_from(["NaN", "[NaN]", "[1e999]", '["\\u0000"]', "[18446744073709551616]"]).map(
        lambda raw: _b64(raw.encode())
    ),
)

days = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.integers(min_value=-(10**6), max_value=10**6).map(lambda y: f"{y}-01-01"),
    st.sampled_from(
        [
            "0000-01-01",
            "0001-01-01",
            "9999-12-31",
            "+10000-01-01",
            "2026-02-30",
            "2026-1-1",
            "2026-01-01T00:00:00Z",
            "20260101",
            "\u0662\u0660\u0662\u0666-\u0660\u0661-\u0660\u0661",
            "2026-01-01\x00",
            "-0001-01-01",
            "2026-W01-1",
            "2026-001",
            "1e999",
            "NaN",
            "",
        ]
    ),
    st.text(max_size=30),
)

query_numbers = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),  # nan, inf, -inf, 1e+308, -0.0
    st.sampled_from(["NaN", "nan", "Infinity", "-inf", "1e999", "0x10", "1_000", "½", "٣", " 5"]),
    st.text(max_size=12),
)

NON_FINITE_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1E+400",
    "1.5e309",
    "9" * 400 + ".0",
]


@st.composite
def json_text(draw_: st.DrawFn, depth: int = 0) -> tuple[str, bool]:
    """JSON-like text (Python's parser's dialect) and whether it holds a non-finite number."""
    kind = draw_(st.integers(0, 9 if depth < 6 else 5))
    if kind <= 1:
        token = draw_(st.sampled_from(NON_FINITE_TOKENS))
        return token, True
    if kind == 2:
        mantissa = draw_(st.sampled_from(["1", "-1", "0", "9.99", "12345678901234567890"]))
        exponent = draw_(st.integers(-500, 500))
        plus = draw_(st.sampled_from(["", "+"])) if exponent >= 0 else ""
        text = f"{mantissa}{draw_(st.sampled_from('eE'))}{plus}{exponent}"
        return text, not math.isfinite(float(text))
    if kind == 3:
        text = st.text(
            st.characters(exclude_characters="\x00"), max_size=20
        )  # NUL: another refusal
        return json.dumps(draw_(text | st.sampled_from(NON_FINITE_TOKENS))), False
    if kind == 4:
        return json.dumps(
            draw_(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
        ), False
    if kind == 5:
        return draw_(st.sampled_from(["true", "false", "null", "0", "-0.0"])), False
    children = draw_(st.lists(json_text(depth + 1), max_size=4))
    sep = draw_(st.sampled_from([",", ", ", ",\n"]))
    if kind <= 7:
        return "[" + sep.join(c for c, _ in children) + "]", any(b for _, b in children)
    keys = draw_(
        st.lists(st.text('abc"\\é\n', max_size=6), min_size=len(children), max_size=len(children))
    )
    body = sep.join(f"{json.dumps(k)}: {c}" for k, (c, _) in zip(keys, children, strict=True))
    return "{" + body + "}", any(b for _, b in children)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def _every_value(text: str) -> Any:
    """json.loads, keeping the values of repeated keys too (as lists)."""
    return json.loads(text, object_pairs_hook=lambda pairs: [v for _, v in pairs])


def test_the_body_scan_flags_exactly_the_non_finite_numbers_python_would_read() -> None:
    """No false positive (a "NaN" inside a string, 1e-999, a 400-digit integer) and no miss."""
    for text, expected in draw(json_text(), _n(400)):
        assert _has_non_finite(_every_value(text)) == expected, text  # the oracle agrees
        found = scan_json_text(text.encode(), max_depth=MAX_JSON_DEPTH, per_line=False)
        assert (found is not None and found[0] == "non_finite") == expected, (text, found)


# --------------------------------------------------------------------------- against the apps


def _list_routes(apps: dict) -> list[RouteInfo]:
    found = []
    for info in iter_routes(apps):
        if info.method != "GET":
            continue
        stack, names = [info.route.dependant], set()
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


def _problem(resp: httpx.Response) -> dict[str, Any]:
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.text
    return resp.json()


async def test_fuzzed_cursors_are_422_on_every_list_endpoint(
    apps: dict, clients: dict[str, httpx.AsyncClient], role_headers: dict
) -> None:
    routes = _list_routes(apps)
    assert len(routes) >= 10
    wrong: list[str] = []
    started = time.monotonic()
    for info in routes:
        for cursor in draw(cursors, _n(40)):
            if not cursor:
                continue  # an empty cursor is no cursor: the first page
            resp = await clients[info.service].get(
                info.url(), params={"cursor": cursor}, headers=role_headers[info.auth]
            )
            ok = resp.status_code == 422 and _problem(resp)["code"] in (
                "invalid_cursor",
                "validation_error",  # longer than 512 characters, or a NUL in the query
            )
            if not ok:
                wrong.append(
                    f"GET {info.path} cursor={cursor!r}: {resp.status_code} {resp.text[:200]}"
                )
    assert not wrong, "\n".join(wrong[:20])
    assert time.monotonic() - started < 60 * max(1.0, SCALE), "over its time budget"


async def test_fuzzed_limits_never_answer_5xx(
    apps: dict, clients: dict[str, httpx.AsyncClient], role_headers: dict
) -> None:
    wrong: list[str] = []
    for info in _list_routes(apps):
        for limit in draw(query_numbers, _n(12)):
            resp = await clients[info.service].get(
                info.url(), params={"limit": limit}, headers=role_headers[info.auth]
            )
            good = resp.status_code in (200, 404, 422)  # "2.0" is a 2 (lax integers)
            if resp.status_code == 200:
                good = len(resp.json()["items"]) <= 200
            else:
                _problem(resp)
            if not good:
                wrong.append(
                    f"GET {info.path} limit={limit!r}: {resp.status_code} {resp.text[:200]}"
                )
    assert not wrong, "\n".join(wrong[:20])


async def test_fuzzed_earnings_dates_never_answer_5xx(
    payments_client: httpx.AsyncClient, role_headers: dict
) -> None:
    wrong: list[str] = []
    pairs = draw(st.tuples(st.none() | days, st.none() | days), _n(120))
    for start, end in pairs:
        params = {k: v for k, v in (("from", start), ("to", end)) if v is not None}
        resp = await payments_client.get(
            "/v1/earnings", params=params, headers=role_headers["worker"]
        )
        if resp.status_code not in (200, 422):
            wrong.append(f"from={start!r} to={end!r}: {resp.status_code} {resp.text[:200]}")
        elif resp.status_code == 422:
            _problem(resp)
    assert not wrong, "\n".join(wrong[:20])


# Endpoints that take a JSON body, one or more per service, with a body that is valid but for
# the number put at `at` (a JSON pointer-ish path to replace).
def _bodies(project_id: str, worker_id: str) -> list[tuple[str, str, str, dict[str, Any], list]]:
    return [
        ("tasks", "POST", "/v1/projects", dict(PROJECT_DEFAULTS), ["assignments_per_task"]),
        (
            "tasks",
            "POST",
            "/v1/projects",
            dict(PROJECT_DEFAULTS),
            ["estimated_seconds_per_assignment"],
        ),
        (
            "tasks",
            "POST",
            f"/v1/projects/{project_id}/tasks",
            {"tasks": [{"input": {"text": "t", "score": 1}}]},
            ["tasks", 0, "input", "score"],
        ),
        ("payments", "POST", "/v1/deposits", {"amount": "1.00"}, ["amount"]),
        ("workers", "PATCH", "/v1/workers/me", {"bio": "b"}, ["bio"]),
        (
            "workers",
            "POST",
            "/v1/qualification-types",
            {"name": "n", "description": "d", "auto_grant": True, "auto_grant_value": 1},
            ["auto_grant_value"],
        ),
    ]


def _replace(body: Any, at: list, raw: str) -> str:
    marker = "__NUMBER_GOES_HERE__"
    target = body
    for step in at[:-1]:
        target = target[step]
    target[at[-1]] = marker
    return json.dumps(body).replace(json.dumps(marker), raw)


json_numbers = st.one_of(
    st.sampled_from(NON_FINITE_TOKENS),
    st.integers().map(str),  # beyond 64 bits too
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.tuples(st.integers(-999, 999), st.integers(-999, 999)).map(lambda t: f"{t[0]}e{t[1]}"),
)


async def test_fuzzed_json_numbers_never_answer_5xx_and_non_finite_ones_are_422(
    clients: dict[str, httpx.AsyncClient], workers_client: httpx.AsyncClient
) -> None:
    requester = await create_requester(workers_client)
    worker = await create_worker(workers_client)
    resp = await clients["tasks"].post(
        "/v1/projects",
        json={
            **{k: v for k, v in PROJECT_DEFAULTS.items() if k != "labels"},
            "task_type": "free_form",
            "answer_schema": {"type": "object"},
        },
        headers=requester.headers,
    )
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["id"]
    headers = {"tasks": requester.headers, "payments": requester.headers, "workers": worker.headers}
    wrong: list[str] = []
    numbers = draw(json_numbers, _n(25))
    for service, method, path, base, at in _bodies(project_id, worker.id):
        for raw in numbers:
            content = _replace(json.loads(json.dumps(base)), at, raw)
            resp = await clients[service].request(
                method,
                path,
                content=content,
                headers={**headers[service], "Content-Type": "application/json"},
            )
            non_finite = _has_non_finite(_every_value(content))
            if resp.status_code >= 500 or (non_finite and resp.status_code != 422):
                wrong.append(f"{method} {path} {raw[:60]}: {resp.status_code} {resp.text[:200]}")
            elif non_finite:
                assert _problem(resp)["errors"] == [{"loc": ["body"], "msg": "not a finite number"}]
    assert not wrong, "\n".join(wrong[:20])
