"""docker-compose.yml and docker/nginx.conf agree with the code they deploy.

Nothing here runs Docker or nginx: the files are parsed and checked against the apps themselves,
so a new route, a renamed setting or a wrong gateway prefix fails CI instead of production.
- each service runs its own `services.<name>.app:create_app` factory on its own port;
- each service's environment names every required setting of its Settings class (and nothing
  with its prefix that the class does not know: a typo would be silently ignored);
- start order: Postgres healthy -> migrations done -> services healthy -> gateway;
- the gateway sends every /v1 route of every app to the app that serves it, using nginx's
  longest-prefix rule, and never exposes /internal/*.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "docker" / "nginx.conf"
SERVICES = {"tasks": 8001, "workers": 8002, "payments": 8003}
SAMPLE_PARAM = "X1"  # stands for every {param}; never "me", which would change the owner


# --------------------------------------------------------------------------- nginx parsing


@dataclass(frozen=True)
class Location:
    modifier: str  # "" (prefix), "^~" (prefix, no regex check) or "=" (exact)
    path: str
    upstream: str | None  # host of proxy_pass, None for locations that answer themselves


def _strip_comments(text: str) -> str:
    """Drop `# ...` comments; quoted strings (JSON bodies of `return`) are kept intact."""
    out, quote = [], ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _block_end(text: str, open_brace: int) -> int:
    """Index of the `}` closing the block opened at `open_brace` (braces in quotes ignored)."""
    depth, quote = 0, ""
    for i in range(open_brace, len(text)):
        ch = text[i]
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced braces in nginx config")


_LOCATION = re.compile(r"\blocation\s+(?:(=|\^~|~\*?)\s+)?(\S+?)\s*\{")
_PROXY_PASS = re.compile(r"\bproxy_pass\s+([^;\s]+)\s*;")
_UPSTREAM = re.compile(r"\bupstream\s+(\S+)\s*\{")
_SERVER = re.compile(r"\bserver\s+([^;\s]+)[^;]*;")


def parse_locations(conf: str) -> list[Location]:
    """The `location` blocks of a config; regex locations are refused (keep routing prefix-only)."""
    text = _strip_comments(conf)
    found = []
    for match in _LOCATION.finditer(text):
        modifier, path = match.group(1) or "", match.group(2)
        if modifier.startswith("~"):
            raise ValueError(f"regex location {path!r}: the gateway uses prefix locations only")
        if path.startswith("@"):
            continue  # named location: a target of error_page, never matched against a URI
        body = text[match.end() : _block_end(text, match.end() - 1)]
        proxy = _PROXY_PASS.search(body)
        upstream = urlsplit(proxy.group(1)).hostname if proxy else None
        found.append(Location(modifier, path, upstream))
    return found


def parse_upstreams(conf: str) -> dict[str, list[str]]:
    """`upstream name { server host:port; ... }` blocks as {name: ["host:port", ...]}."""
    text = _strip_comments(conf)
    result = {}
    for match in _UPSTREAM.finditer(text):
        body = text[match.end() : _block_end(text, match.end() - 1)]
        result[match.group(1)] = _SERVER.findall(body)
    return result


def resolve(locations: list[Location], uri: str) -> Location | None:
    """nginx's choice for `uri`: an exact match, else the longest matching prefix."""
    for loc in locations:
        if loc.modifier == "=" and loc.path == uri:
            return loc
    prefixes = [loc for loc in locations if loc.modifier != "=" and uri.startswith(loc.path)]
    return max(prefixes, key=lambda loc: len(loc.path), default=None)


def test_parser_on_a_small_config() -> None:
    conf = """
    http {
      upstream workers { server workers:8002; keepalive 8; }   # comment { with a brace
      server {
        location /v1/workers { proxy_pass http://workers; }
        location /v1/workers/me/assignments {
            proxy_set_header X-A "b";
            proxy_pass http://tasks:8001/;
        }
        location = /healthz { return 200 '{"status":"ok"}'; }
        location ^~ /static/ { root /srv; }
        location / { return 404; }
        error_page 413 @big;
        location @big { return 413 '{"code":"payload_too_large"}'; }
      }
    }
    """
    locations = parse_locations(conf)
    assert [loc.path for loc in locations] == [
        "/v1/workers",
        "/v1/workers/me/assignments",
        "/healthz",
        "/static/",
        "/",
    ]
    assert parse_upstreams(conf) == {"workers": ["workers:8002"]}

    def upstream(uri: str) -> str | None:
        loc = resolve(locations, uri)
        assert loc is not None
        return loc.upstream

    assert upstream("/v1/workers/me") == "workers"
    assert upstream("/v1/workers/W1/assignments") == "workers"
    assert upstream("/v1/workers/me/assignments") == "tasks"
    assert resolve(locations, "/healthz") == Location("=", "/healthz", None)
    assert resolve(locations, "/healthzz") == Location("", "/", None)
    assert resolve(locations, "/static/a.css") == Location("^~", "/static/", None)
    assert resolve([], "/x") is None
    with pytest.raises(ValueError, match="regex"):
        parse_locations(r"location ~ ^/v1/(a|b) { proxy_pass http://x; }")


# --------------------------------------------------------------------------- compose structure


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    return NGINX_CONF.read_text()


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """compose's ${VAR}, ${VAR:-default}, ${VAR:?error}, with `env` as the shell."""
    return _INTERPOLATION.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", value)


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_its_own_factory_on_its_port(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    port = str(SERVICES[name])
    command = _command(service)
    assert command[0] == "uvicorn" and "--factory" in command, command
    assert f"services.{name}.app:create_app" in command, command
    assert command[command.index("--port") + 1] == port
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert service["build"]["dockerfile"] == "docker/Dockerfile"
    assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:18")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    migrate = services["migrate"]
    assert _command(migrate) == ["alembic", "upgrade", "head"]
    assert "DATABASE_URL" in _environment(migrate)
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}

    for name in SERVICES:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name

    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx")
    assert "./docker/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert "8080:8080" in nginx["ports"]
    assert nginx["depends_on"] == {name: {"condition": "service_healthy"} for name in SERVICES}


@pytest.mark.parametrize("name", SERVICES)
def test_service_urls_point_at_compose_names(compose: dict[str, Any], name: str) -> None:
    env = _environment(compose["services"][name])
    database_url = _environment(compose["services"]["migrate"])["DATABASE_URL"]
    prefix = name.upper() + "_"
    assert env[prefix + "DATABASE_URL"] == database_url, "services and migrations share one DB"
    assert urlsplit(database_url).hostname == "postgres"
    for peer, port in SERVICES.items():
        assert env[f"{prefix}{peer.upper()}_URL"] == f"http://{peer}:{port}"


def test_gateway_basics(nginx_conf: str) -> None:
    text = _strip_comments(nginx_conf)
    assert re.search(r"\blisten\s+8080\s*;", text)
    assert re.search(r"\bclient_max_body_size\s+10m\s*;", text)
    assert parse_upstreams(nginx_conf) == {
        name: [f"{name}:{port}"] for name, port in SERVICES.items()
    }
    locations = parse_locations(nginx_conf)
    for uri in ("/internal/ledger/check", "/internal/anything", "/", "/v2/projects"):
        loc = resolve(locations, uri)
        assert loc is not None and loc.upstream is None, f"{uri} must not reach a service"


def test_gateway_follows_the_ownership_table(nginx_conf: str) -> None:
    """Every prefix of docs/architecture.md's "Who owns which public path" reaches its owner."""
    table = (ROOT / "docs" / "architecture.md").read_text().split("## Who owns which public path")
    rows = re.findall(r"^\|(.+)\|\s*(tasks|workers|payments)\s*\|$", table[1], re.MULTILINE)
    assert len(rows) == 3
    locations = parse_locations(nginx_conf)
    for prefixes, owner in rows:
        for prefix in re.findall(r"`(/v1/[^`]+)`", prefixes):
            for uri in (prefix, prefix + "/" + SAMPLE_PARAM):
                loc = resolve(locations, uri)
                assert loc is not None and loc.upstream == owner, f"{uri} -> {loc}, not {owner}"


# --------------------------------------------------------------------------- against the apps


# TODO(lead): remove this skip once the three services exist.


def _settings_class(name: str) -> Any:
    return importlib.import_module(f"services.{name}.settings").Settings


def _env_names(settings: Any) -> tuple[str, dict[str, str]]:
    """(env prefix, {field name: env var name}) as pydantic-settings reads them."""
    prefix = settings.model_config.get("env_prefix", "")
    names = {}
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names[field_name] = (alias or field.alias or prefix + field_name).upper()
    return prefix.upper(), names


@pytest.mark.parametrize("name", SERVICES)
def test_environment_covers_the_settings(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_class(name)
    prefix, env_names = _env_names(settings)
    assert prefix == name.upper() + "_"
    env = _environment(compose["services"][name])
    given = {key.upper() for key in env}

    required = [env_names[f] for f, info in settings.model_fields.items() if info.is_required()]
    assert required, "expected at least DATABASE_URL and INTERNAL_TOKEN to be required"
    missing = sorted(set(required) - given)
    assert not missing, f"{name}: compose does not set required settings {missing}"

    unknown = sorted(k for k in given if k.startswith(prefix) and k not in env_names.values())
    assert not unknown, f"{name}: compose sets {unknown}, which {name} Settings does not read"

    # And the values validate (with a real-looking secret for the ${INTERNAL_TOKEN:?} slot).
    shell = {"INTERNAL_TOKEN": "compose-test-token-0123456789abcdef"}
    for key, value in env.items():
        monkeypatch.setenv(key, _interpolate(value, shell))
    settings()


def test_gateway_routes_every_public_route_to_its_owner(
    nginx_conf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SERVICES:  # create_app() reads settings but needs no database
        monkeypatch.setenv(f"{name.upper()}_DATABASE_URL", "postgresql://x@localhost/x")
        monkeypatch.setenv(f"{name.upper()}_INTERNAL_TOKEN", "compose-test-token-0123456789")
    locations = parse_locations(nginx_conf)
    wrong, checked = [], 0
    for name in SERVICES:
        app = importlib.import_module(f"services.{name}.app").create_app()
        for path in sorted(_app_paths(app)):
            uri = re.sub(r"\{[^}]+\}", SAMPLE_PARAM, path)
            loc = resolve(locations, uri)
            upstream = loc.upstream if loc else None
            if path.startswith("/v1/"):
                checked += 1
                if upstream != name:
                    wrong.append(f"{path} ({name}) -> {upstream}")
            elif path.startswith("/internal/") and upstream is not None:
                wrong.append(f"{path} is internal but the gateway sends it to {upstream}")
    assert checked, "no /v1 routes found"
    assert not wrong, "gateway misroutes:\n" + "\n".join(wrong)


def _app_paths(app: Any) -> set[str]:
    """Every route path of an app: the OpenAPI paths plus the router's own list.

    Recent FastAPI keeps included routers as lazy entries in `app.routes`;
    `fastapi.routing.iter_route_contexts` flattens them where it exists. The OpenAPI document
    (a public contract of every service) covers what the flattening might miss.
    """
    from fastapi import routing

    flatten = getattr(routing, "iter_route_contexts", None)
    routes = flatten(app.routes) if flatten else app.routes
    paths = {path for route in routes if isinstance(path := getattr(route, "path", None), str)}
    return paths | set(app.openapi()["paths"])


# --------------------------------------------------------------------------- client addresses


def test_uvicorn_leaves_forwarded_headers_to_the_app(compose: dict[str, Any]) -> None:
    """uvicorn's own proxy-headers handling trusts X-Forwarded-For from 127.0.0.1 by default;
    the services judge it themselves (shared.ratelimit.TrustedProxies, *_FORWARDED_ALLOW_IPS)."""
    for name in SERVICES:
        assert "--no-proxy-headers" in _command(compose["services"][name]), name
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert "uvicorn" in cmd and '"--no-proxy-headers"' in cmd


def _locations_with_bodies(conf: str) -> list[tuple[str, str]]:
    text = _strip_comments(conf)
    return [
        (match.group(2), text[match.end() : _block_end(text, match.end() - 1)])
        for match in _LOCATION.finditer(text)
    ]


def test_gateway_sends_the_client_address_it_saw(nginx_conf: str) -> None:
    """nginx is the edge: X-Forwarded-For is overwritten with the TCP peer's address, never
    appended to what the client sent (which would let a client pick its own address)."""
    text = _strip_comments(nginx_conf)
    assert "$proxy_add_x_forwarded_for" not in text
    xff = re.findall(r"\bproxy_set_header\s+X-Forwarded-For\s+([^;]+);", text, re.IGNORECASE)
    assert xff == ["$remote_addr"], xff
    # A location with its own proxy_set_header inherits none of the server's: none may have any
    # unless it sets X-Forwarded-For too.
    for path, body in _locations_with_bodies(nginx_conf):
        if "proxy_set_header" in body:
            assert re.search(r"X-Forwarded-For\s+\$remote_addr\s*;", body), path


def test_services_trust_forwarded_headers_from_the_gateway_network_only(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipaddress

    from shared.ratelimit import TrustedProxies

    network = compose["networks"]["default"]
    subnets = [_interpolate(c["subnet"], {}) for c in network["ipam"]["config"]]
    assert subnets and all(ipaddress.ip_network(s).is_private for s in subnets)
    gateway = compose["services"]["nginx"]
    assert gateway.get("networks") in (None, ["default"]), "the gateway must be on that network"
    inside = str(next(ipaddress.ip_network(subnets[0]).hosts()))
    for name in SERVICES:
        service = compose["services"][name]
        assert "ports" not in service, f"{name} is reachable without the gateway"
        assert service.get("networks") in (None, ["default"]), name
        env = _environment(service)
        raw = env[f"{name.upper()}_FORWARDED_ALLOW_IPS"]
        monkeypatch.setenv(f"{name.upper()}_DATABASE_URL", "postgresql://x@localhost/x")
        monkeypatch.setenv(f"{name.upper()}_INTERNAL_TOKEN", "compose-test-token-0123456789")
        monkeypatch.setenv(f"{name.upper()}_FORWARDED_ALLOW_IPS", _interpolate(raw, {}))
        settings = _settings_class(name)()
        trusted = TrustedProxies(settings.forwarded_allow_ips)
        assert trusted.networks == tuple(ipaddress.ip_network(s) for s in subnets), name
        # through the gateway: the address nginx saw; from elsewhere: the peer itself
        assert trusted.client_key(inside, ["9.9.9.9, 203.0.113.7"]) == "203.0.113.7"
        assert trusted.client_key("198.51.100.1", ["203.0.113.7"]) == "198.51.100.1"


# --------------------------------------------------------------------------- metrics


PROMETHEUS_DIR = ROOT / "docker" / "prometheus"
GRAFANA_DIR = ROOT / "docker" / "grafana"


def test_prometheus_scrapes_every_service_inside_the_network(compose: dict[str, Any]) -> None:
    """Every service's /metrics is a scrape target by its compose name and port; the gateway,
    the only way in from outside, answers /metrics itself (404) instead of routing it."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SERVICES)
    for name, port in SERVICES.items():
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
        targets = [t for group in jobs[name]["static_configs"] for t in group["targets"]]
        assert targets == [f"{name}:{port}"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / Path(rule_file).name).exists(), rule_file
        assert rule_file.startswith("/etc/prometheus/")

    prometheus = compose["services"]["prometheus"]
    assert "./docker/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in _command(prometheus)
    assert set(prometheus["depends_on"]) == set(SERVICES)
    for service in ("prometheus", "grafana"):  # the host's loopback only
        assert all(p.startswith("127.0.0.1:") for p in compose["services"][service]["ports"])


def test_gateway_never_routes_metrics(nginx_conf: str) -> None:
    locations = parse_locations(nginx_conf)
    for uri in ("/metrics", "/metrics/", "/metricsx"):
        loc = resolve(locations, uri)
        assert loc is not None and loc.upstream is None, f"{uri} -> {loc}"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert [(d["type"], d["url"], d["uid"]) for d in datasources] == [
        ("prometheus", "http://prometheus:9090", "prometheus")
    ]
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "marketplace.yml").read_text()
    )["providers"]
    dashboards_path = providers[0]["options"]["path"]
    assert mounts[dashboards_path] == "./docker/grafana/dashboards"
    import json

    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "marketplace.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p["targets"] for p in panels)
    for panel in panels:  # every query goes to the provisioned data source
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus", panel["title"]
