"""`manage.py runplatform` end to end: Redis, daphne, worker and beat start, serve, and stop cleanly."""

import http.cookiejar
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from liveplatform.embedded_redis import free_loopback_port
from tests.support.processes import LOG_DIR, ROOT, wait_for
from tests.support.ws import open_socket

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def log_in(base_url: str, email: str, password: str) -> str:
    """Log in through the allauth form over plain HTTP; return the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base_url}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"login": email, "password": password, "csrfmiddlewaretoken": token}).encode()
    request = urllib.request.Request(f"{base_url}/accounts/login/", data=form, headers={"Referer": base_url})
    opener.open(request, timeout=10)
    return next(cookie.value for cookie in jar if cookie.name == "sessionid")


def test_runplatform_serves_sockets_and_stops_every_child_on_ctrl_c(transactional_db, subprocess_env, tmp_path):
    from accounts import demo

    demo.seed(password=demo.DEMO_PASSWORD)
    port = free_loopback_port()
    # The embedded Redis, with its files and URL in a VAR_DIR of the test's own (not the checkout's var/).
    env = {key: value for key, value in subprocess_env.items() if key != "REDIS_URL"} | {"VAR_DIR": str(tmp_path)}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"runplatform-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runplatform", "--port", str(port), "--concurrency", "1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        children: set[int] = set()
        try:
            wait_for(lambda: "is ready" in log_path.read_text(), timeout=90, message="runplatform ready")
            output = log_path.read_text()
            assert f"http://127.0.0.1:{port}/" in output
            redis_url = re.search(r"Redis: (redis://\S+)", output).group(1)
            assert redis_url.startswith("redis://127.0.0.1:")
            assert (tmp_path / "redis.url").read_text().strip() == redis_url  # for a second terminal
            # daphne, worker (+ its pool), beat and the embedded Redis.
            children = wait_for(lambda: (found := descendants(process.pid)) and len(found) >= 5 and found, timeout=30)

            session = log_in(f"http://127.0.0.1:{port}", "alice@acme.test", demo.DEMO_PASSWORD)
            with open_socket(f"ws://127.0.0.1:{port}", session=session) as sock:
                hello = sock.wait_type("hello")
                assert [t["slug"] for t in hello["data"]["tenants"]] == ["acme"]
                sock.send({"type": "ping"})
                assert sock.wait_type("pong")

            children |= descendants(process.pid)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    still_running = wait_for(lambda: not [pid for pid in children if alive(pid)], timeout=20, message="children gone")
    assert still_running
    assert "Stopped cleanly." in log_path.read_text()
    assert not (tmp_path / "redis.url").exists()  # removed on a clean exit


def test_make_run_takes_a_port_prints_the_logins_once_and_help_describes_every_option(subprocess_env):
    """Tests `make run PORT=…` (issue 16), one list of demo logins (runplatform's), and a described --port."""
    dry_run = subprocess.run(["make", "-n", "run", "PORT=8123"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "manage.py runplatform --port 8123" in dry_run.stdout, dry_run.stdout + dry_run.stderr
    assert "manage.py seed_demo --verbosity 0" in dry_run.stdout  # seed_demo keeps quiet; runplatform prints them
    described = subprocess.run(
        [sys.executable, "manage.py", "runplatform", "--help"],
        cwd=ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "TCP port daphne serves the site on" in " ".join(described.stdout.split())
