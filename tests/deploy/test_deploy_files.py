"""The deployment files, checked without Docker: nginx -t, compose structure, units, README, check --deploy."""

from __future__ import annotations

import configparser
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from push.vapid import generate_pair
from tests.deploy.stack import NGINX_CONF, nginx_test, render_nginx_conf

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Packages whose Python code may read the environment (tests and benchmarks excluded).
APP_DIRS = ["liveplatform", "accounts", "realtime", "notifications", "announcements", "workers"]
ENV_READ = re.compile(
    r"""(?:env_(?:bool|int|float|list)\(|os\.environ\.get\(|os\.environ\.setdefault\(|os\.environ\[|os\.getenv\()"""
    r"""\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def seconds(value: str) -> float:
    """'30s', '2m' or '120' as seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", str(value).strip())
    assert match, value
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def test_the_shipped_nginx_conf_passes_nginx_t_with_tls_and_both_upstreams(tmp_path):
    """Tests deploy/nginx.conf with Debian's nginx: only addresses, ports and certificates change."""
    conf = render_nginx_conf(tmp_path, ["127.0.0.1:18001", "127.0.0.1:18002"], http_port=18080, https_port=18443)
    result = nginx_test(conf, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


def test_nginx_upgrades_sockets_passes_proxy_headers_and_outwaits_the_heartbeat():
    """Tests the rules a live socket depends on, as written in the shipped file."""
    text = NGINX_CONF.read_text()
    ws = re.search(r"location /ws/ \{(.*?)\}", text, flags=re.S).group(1)
    assert "proxy_pass http://liveplatform_web;" in ws
    read_timeout = seconds(re.search(r"proxy_read_timeout (\S+);", ws).group(1))
    # More than two heartbeats without a frame before nginx gives up on a socket.
    assert read_timeout > 2 * settings.REALTIME["HEARTBEAT_SECONDS"]
    for header in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Request-ID $liveplatform_request_id;",
    ):
        assert header in text
    assert re.search(r"location = /metrics \{\s*return 404;", text), "metrics must not be public"
    assert "ip_hash" not in text and "sticky" not in text, "no sticky sessions are needed"


def test_compose_runs_the_whole_platform_with_health_checks():
    """Tests docker-compose.yml's structure: services, roles, health checks, start order, drain time."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "postgres", "redis", "migrate", "web1", "web2", "worker", "realtime-worker", "beat", "nginx",
    }  # fmt: skip
    for name in ("web1", "web2"):
        web = services[name]
        assert web["command"] == ["web"]
        assert "/readyz" in " ".join(web["healthcheck"]["test"])
        assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert web["depends_on"]["postgres"]["condition"] == "service_healthy"
        # The orchestrator must wait longer than the drain before it kills.
        assert seconds(web["stop_grace_period"]) > float(web["environment"]["SHUTDOWN_DRAIN_SECONDS"]) + 5
        assert web["environment"]["DJANGO_SETTINGS_MODULE"] == "liveplatform.settings.production"
        assert web["environment"]["LOG_FORMAT"] == "json"
    assert services["worker"]["command"] == ["worker"] and services["beat"]["command"] == ["beat"]
    assert services["realtime-worker"]["command"] == ["realtime-worker"]
    assert services["migrate"]["command"] == ["migrate"] and services["migrate"]["restart"] == "no"
    for name in ("postgres", "redis", "web1", "web2", "worker", "realtime-worker", "beat", "nginx"):
        assert services[name]["healthcheck"]["test"], name
    assert {"web1", "web2"} <= set(services["nginx"]["depends_on"])
    assert all(c["condition"] == "service_healthy" for c in services["nginx"]["depends_on"].values())
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    assert services["worker"]["environment"]["CELERY_METRICS_PORT"]
    # Secrets come from the operator's .env and are required, never defaulted.
    raw = (DEPLOY / "docker-compose.yml").read_text()
    for secret in ("SECRET_KEY", "POSTGRES_PASSWORD", "METRICS_TOKEN"):
        assert re.search(rf"\$\{{{secret}:\?", raw), secret


def test_the_image_is_multi_stage_non_root_with_static_files_and_a_health_check():
    """Tests the Dockerfile's production properties."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, flags=re.M)) >= 2
    assert re.search(r"^COPY --from=build ", text, flags=re.M)
    user = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user and user[-1] not in ("root", "0")
    assert "collectstatic --noinput" in text
    assert re.search(r"^HEALTHCHECK .*", text, flags=re.M) and "/healthz" in text
    assert "requirements/prod.txt" in text
    entrypoint = DEPLOY / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    assert subprocess.run(["sh", "-n", str(entrypoint)], capture_output=True).returncode == 0


def test_the_image_build_step_loads_the_production_settings(tmp_path):
    """Tests the Dockerfile's collectstatic environment against the production settings' start-up checks."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    build_env = re.search(r"^RUN (.*?)python manage\.py collectstatic --noinput", text, flags=re.M).group(1)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "SECURE_"))}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="liveplatform.settings.production",
        VAR_DIR=str(tmp_path),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    )
    result = subprocess.run(
        ["sh", "-c", f"{build_env} python manage.py check"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_systemd_units_start_each_role_and_outwait_the_drain():
    """Tests the units parse, run the right commands and give the drain time to finish."""
    units = {}
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read_string(path.read_text().replace("\\\n", " "))
        units[path.name] = parser
    assert set(units) == {
        "liveplatform-web@.service",
        "liveplatform-worker.service",
        "liveplatform-realtime-worker.service",
        "liveplatform-beat.service",
        "liveplatform-migrate.service",
    }
    for name, unit in units.items():
        assert unit["Service"]["EnvironmentFile"] == "/etc/liveplatform/env", name
        assert unit["Service"]["User"] == "liveplatform", name
    web = units["liveplatform-web@.service"]["Service"]
    assert "uvicorn" in web["ExecStart"] and "liveplatform.asgi:application" in web["ExecStart"]
    assert "--timeout-graceful-shutdown" in web["ExecStart"]
    assert "--proxy-headers" in web["ExecStart"]
    assert seconds(web["TimeoutStopSec"]) > settings.SHUTDOWN_DRAIN_SECONDS + 5
    assert web["KillSignal"] == "SIGTERM"
    assert "worker" in units["liveplatform-worker.service"]["Service"]["ExecStart"]
    realtime = units["liveplatform-realtime-worker.service"]["Service"]["ExecStart"]
    assert "-Q realtime" in realtime and "--pool solo" in realtime
    assert "beat" in units["liveplatform-beat.service"]["Service"]["ExecStart"]
    assert units["liveplatform-migrate.service"]["Service"]["Type"] == "oneshot"


def test_the_readme_lists_every_environment_variable_the_code_reads():
    """Tests that an operator finds each variable in deploy/README.md (and in env.example if secret)."""
    read: set[str] = set()
    for directory in APP_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            read.update(ENV_READ.findall(path.read_text()))
    assert {"SECRET_KEY", "DATABASE_URL", "CHANNEL_LAYER_REDIS_URLS", "METRICS_TOKEN"} <= read
    readme = (DEPLOY / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", readme, flags=re.M))
    documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", readme))
    assert sorted(read - documented) == []
    example = (DEPLOY / "env.example").read_text()
    for required in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"):
        assert re.search(rf"^{required}=", example, flags=re.M), required


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "SECURE_"))}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "liveplatform.settings.production",
        "SECRET_KEY": "k" * 20 + "7Qx!rT2@pL9#zW4$vN6%bM1^cF8&hJ3*dS5(gA0)eY" + "q" * 10,
        "ALLOWED_HOSTS": "live.example.com",
        "REDIS_URL": settings.REDIS_URL,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "VAR_DIR": str(tmp_path),
        "WEBPUSH_VAPID_PUBLIC_KEY": VAPID_PUBLIC,
        "WEBPUSH_VAPID_PRIVATE_KEY": VAPID_PRIVATE,
    }


VAPID_PUBLIC, VAPID_PRIVATE = generate_pair()


def test_production_settings_pass_check_deploy(production_env):
    """Tests `manage.py check --deploy` is clean with the production settings and a long secret."""
    result = _manage(production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_without_vapid_keys_makes_none_and_says_push_is_off(production_env, tmp_path):
    """Tests that production never signs with a pair of its own making: no keys, no push, one warning."""
    env = {k: v for k, v in production_env.items() if not k.startswith("WEBPUSH_VAPID_")}
    result = _manage(env, "check", "--deploy")
    assert "push.W001" in result.stdout + result.stderr
    assert not (tmp_path / "vapid.json").exists()


@pytest.mark.parametrize(
    ("secret", "error"),
    [(None, "SECRET_KEY must be set"), ("short", "long random value"), ("dev-insecure-" + "x" * 60, "long random")],
)
def test_production_refuses_to_start_with_a_short_or_missing_secret(monkeypatch, secret, error):
    """Tests a deployment that forgot its secret stops at start-up instead of running with a known key."""
    from django.core.exceptions import ImproperlyConfigured

    if secret is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret)
    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    with pytest.raises(ImproperlyConfigured, match=error):
        runpy.run_module("liveplatform.settings.production", run_name="production_settings_under_test")
