"""The gateway's one source: docker/nginx.conf is the template rendered for compose, and the
local rendering (manage.py run --replicas, tests/gateway/) routes exactly as it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import gateway
from devtools.gateway import LocalGateway, compose_config, render, replica_env, replica_layout
from tests.gateway.conftest import require_nginx
from tests.test_compose import _block_end, _strip_comments, parse_locations, parse_upstreams


def test_the_committed_compose_config_is_the_rendered_template() -> None:
    assert gateway.COMPOSE_CONF.read_text() == compose_config(), (
        "docker/nginx.conf is stale: edit docker/nginx.conf.template, then run "
        "python3 -m devtools.gateway"
    )
    done = subprocess.run(
        [sys.executable, "-m", "devtools.gateway", "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _upstream_bodies(conf: str) -> dict[str, str]:
    text = _strip_comments(conf)
    return {
        m.group(1): text[m.end() : _block_end(text, m.end() - 1)]
        for m in re.finditer(r"\bupstream\s+(\w+)\s*\{", text)
    }


def test_tasks_go_by_the_callers_key_and_the_rest_round_robin() -> None:
    conf = compose_config()
    bodies = _upstream_bodies(conf)
    assert re.search(r"^\s*hash \$tasks_affinity consistent;", bodies["tasks"], re.M)
    for name in ("workers", "payments"):  # no balancing directive: nginx's round robin
        assert not re.search(r"\b(hash|ip_hash|least_conn|random)\b", bodies[name]), name
    text = _strip_comments(conf)
    affinity = re.search(r"map \$http_authorization \$tasks_affinity \{(.*?)\}", text, re.S)
    assert affinity, "the tasks hash key must come from the Authorization header"
    assert re.search(r'""\s+\$request_id;', affinity.group(1))  # no key: spread
    assert re.search(r"default\s+\$http_authorization;", affinity.group(1))


def test_the_local_rendering_routes_like_compose(tmp_path: Path) -> None:
    layout = replica_layout(3, ports=list(range(20001, 20010)))
    local = LocalGateway(tmp_path, listen=["127.0.0.1:18001", "127.0.0.1:18002"], layout=layout)
    conf = local.config()  # the rendering alone: no nginx needed
    assert parse_locations(conf) == parse_locations(compose_config())
    assert parse_upstreams(conf) == {
        "tasks": ["127.0.0.1:20001", "127.0.0.1:20002", "127.0.0.1:20003"],
        "workers": ["127.0.0.1:20004", "127.0.0.1:20005", "127.0.0.1:20006"],
        "payments": ["127.0.0.1:20007", "127.0.0.1:20008", "127.0.0.1:20009"],
    }
    assert re.findall(r"^\s*listen (\S+);", conf, re.M) == ["127.0.0.1:18001", "127.0.0.1:18002"]
    # everything else is the compose file's, line for line
    strip = re.compile(r"^\s*(listen|server|\w+_temp_path) .*$\n", re.M)
    assert strip.sub("", conf) == strip.sub("", compose_config())


def test_nginx_accepts_the_local_rendering(tmp_path: Path) -> None:
    require_nginx()
    local = LocalGateway(
        tmp_path, listen=["127.0.0.1:18080"], layout=replica_layout(2, ports=range(20001, 20007))
    )
    local.write()  # runs `nginx -t` on it


def test_render_refuses_what_would_be_a_broken_gateway() -> None:
    with pytest.raises(ValueError, match="no upstream servers"):
        render(listen=["8080"], upstreams={"tasks": ["a:1"], "workers": ["b:2"]})
    with pytest.raises(ValueError, match="no upstream servers"):
        render(listen=["8080"], upstreams={"tasks": [], "workers": ["b:2"], "payments": ["c:3"]})


def test_replica_i_calls_replica_i_of_each_peer_directly() -> None:
    layout = replica_layout(2, ports=range(30001, 30007))
    base = {"TASKS_PAYMENTS_URL": "http://elsewhere", "OTHER": "kept"}
    second_tasks = layout["tasks"][1]
    env = replica_env(base, second_tasks, layout, "127.0.0.1")
    assert env["TASKS_PAYMENTS_URL"] == "http://127.0.0.1:30006"
    assert env["TASKS_WORKERS_URL"] == "http://127.0.0.1:30004"
    assert env["TASKS_TASKS_URL"] == "http://127.0.0.1:30002"
    assert env["TASKS_FORWARDED_ALLOW_IPS"] == "127.0.0.1/32"  # nginx is the only proxy
    assert env["OTHER"] == "kept" and base["TASKS_PAYMENTS_URL"] == "http://elsewhere"
    assert [r.name for r in layout["workers"]] == ["workers-1", "workers-2"]
    with pytest.raises(ValueError):
        replica_layout(0)
