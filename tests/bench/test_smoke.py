"""The benchmark's smoke mode, run with the suite so that ``make bench`` cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


def test_bench_smoke_delivers_everything_to_50_sockets_and_writes_the_table(tmp_path):
    """Tests that the suite starts its own stack, every socket gets every broadcast, and JSON is written."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["VAR_DIR"] = str(tmp_path)
    before = set((ROOT / "bench" / "results").glob("*-smoke.json"))
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--targets", "raw,plain-redis,ours-fanout"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "| raw websockets.broadcast (ceiling) | 50 | 250/250 |" in run.stdout
    written = set((ROOT / "bench" / "results").glob("*-smoke.json")) - before
    assert len(written) == 1
    results = {r["target"]: r for r in json.loads(written.pop().read_text())["results"]}
    for key in ("raw", "plain-redis", "ours-fanout"):
        assert results[key]["isolated"]["all_delivered"], results[key]
        assert results[key]["sustained"]["all_delivered"], results[key]
    ours = results["ours-fanout"]
    assert ours["per_user_publish"]["all_delivered"]
    assert ours["per_user_celery"]["all_delivered"]
    assert ours["reconnect"]["lost"] == 0 and ours["reconnect"]["connected"] == 50
    # A tight progress() loop is throttled, and the owner's socket gets every message sent.
    for label, figures in ours["progress"].items():
        assert figures["calls"] > 100 * figures["published"] > 0, (label, figures)
        assert figures["socket_frames"] == figures["published"], (label, figures)
