"""The presence-storm benchmark at a tiny size, run with the suite so that it cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.stack
@pytest.mark.timeout(120)
def test_presence_storm_smoke_gets_every_watchers_view_right_with_few_frames_and_none_to_others(tmp_path):
    """Tests that after 60 members storm in, 5 watchers see them all in throttled diffs, and nobody else gets one."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["VAR_DIR"] = str(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "bench.presence_storm", "--members", "60", "--watchers", "5", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=85,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["storm"]["connected"] == 55, figures
    assert figures["views_right"] and figures["watchers_right"] == 5, figures
    assert figures["nonwatcher_frames"] == {"total": 0, "max": 0}, figures
    # At most one diff per throttle period, whatever the number of members who came online.
    bound = figures["seconds_storm_start_to_views_right"] / figures["throttle_seconds"] + 2
    assert figures["watcher_frames_until_views_right"]["max"] <= bound, figures
