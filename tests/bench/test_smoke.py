"""The benchmark's smoke mode, run with the suite so that ``make bench`` cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One ``python -m bench --smoke`` run (its own Redis, SQLite, servers and worker), and its JSON."""
    tmp = tmp_path_factory.mktemp("bench")
    # As `make bench` runs from a shell: no database, Redis or stream key prefix of the test run.
    unset = ("DATABASE_URL", "REDIS_URL", "REALTIME_STREAM_KEY_PREFIX")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env["VAR_DIR"] = str(tmp)
    out = tmp / "smoke.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    payload = json.loads(out.read_text())
    return run.stdout, payload, out


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_bench_smoke_delivers_everything_to_50_sockets_on_every_default_target(smoke):
    """Tests that the suite starts its own stack and every socket of every target gets every broadcast."""
    stdout, payload, _ = smoke
    fan_out = {r["target"]: r for r in payload["results"] if not r.get("idle")}
    assert set(fan_out) == {"raw", "plain-redis", "ours"}
    for result in fan_out.values():
        assert "error" not in result and "skipped" not in result, result
        assert result["connect"]["connected"] == 50, result
        assert result["isolated"]["all_delivered"], result
        assert result["sustained"]["all_delivered"], result
        assert result["reconnect"]["connected"] == 50, result
    assert "| raw websockets.broadcast (ceiling) | 50 | 50 in " in stdout


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_bench_smoke_runs_every_platform_scenario(smoke):
    """Tests that notifications, per-user paths, progress and the reconnect storm ran on the platform."""
    _, payload, _ = smoke
    ours = next(r for r in payload["results"] if r["target"] == "ours" and not r.get("idle"))
    assert ours["tenant_notification"]["all_delivered"]
    for path in ("per_user_publish", "per_user_notify", "per_user_celery", "per_user_api"):
        assert ours[path]["all_delivered"], (path, ours[path])
    assert ours["per_user_api"]["http_failures"] == 0
    # The storm resumed with ?pos=: every missed event came back by replay, once, with no gap in any stream.
    storm = ours["reconnect"]
    assert storm["missed"] > 0 and storm["lost"] == 0 and storm["duplicates"] == 0, storm
    assert storm["offset_gaps"] == 0 and storm["resyncs"] == 0, storm
    # A tight progress() loop is throttled, and the owner's socket gets every message sent.
    for label, figures in ours["progress"].items():
        assert figures["calls"] > 100 * figures["published"] > 0, (label, figures)
        assert figures["socket_frames"] == figures["published"], (label, figures)


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_bench_smoke_holds_idle_sockets_and_measures_their_memory(smoke):
    """Tests the tiny idle-sockets run: all connected, memory per socket read, the servers may open enough files."""
    _, payload, _ = smoke
    idle = {r["target"]: r for r in payload["results"] if r.get("idle")}
    assert set(idle) == {"raw", "ours"}
    for result in idle.values():
        assert result["connect"]["connected"] == 100, result
        assert result["rss_per_socket_kib"] > 0, result
        assert result["server_fd_limit"] >= 100 + 512, result
        assert result["isolated"]["all_delivered"], result


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_bench_smoke_prints_a_verdict_for_every_target_of_issues_7_and_14(smoke):
    """Tests that issue 7's six targets and issue 14's four get a status line, and a JSON report rebuilds the tables."""
    stdout, _, out = smoke
    verdicts = [line for line in stdout.splitlines() if line.startswith("target: ")]
    assert len(verdicts) == 10, verdicts
    assert sum("publish()" in line or "Celery" in line or "POST /api" in line for line in verdicts[6:]) == 4
    assert all(line.rsplit(": ", 1)[1].split(" (")[0] in ("met", "not met", "not measured") for line in verdicts)
    rebuilt = subprocess.run(
        [sys.executable, "-m", "bench", "--report", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert "**Fan-out: tenant broadcasts, one at a time**" in rebuilt.stdout


def saved_run_meta(**overrides) -> dict:
    """The ``meta`` of a saved run, as ``python -m bench`` writes it."""
    machine = {"nproc": 2, "cpu": "x", "memory": "23Gi", "python": "3.11", "platform": "Linux", "load_average": "0"}
    meta = {
        "command": "python -m bench",
        "started": "2026-11-29T00:00:00+00:00",
        "seconds": 600,
        "load_end": "0.1 0.1 0.1",
        "queries_per_connect": 10,
        "machine": machine,
    }
    return {**meta, **overrides}


def test_write_docs_replaces_only_the_generated_block(tmp_path, monkeypatch):
    """Tests that --write-docs rewrites what is between the markers and keeps the hand-written text around it."""
    from bench import report

    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nhow to run\n\n{report.BEGIN}\nold figures\n{report.END}\n\n## History\n\nkept\n")
    monkeypatch.setattr(report, "DOCS", docs)
    report.write_docs([], saved_run_meta())
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nhow to run\n\n")
    assert text.endswith(f"{report.END}\n\n## History\n\nkept\n")
    assert "old figures" not in text and "the suite took 600 s" in text


def test_ours_falls_back_to_uvicorns_sans_io_protocol_while_the_transport_cannot_be_imported(monkeypatch):
    """Tests that a missing realtime.transport gives `--ws websockets-sansio`, named as such, not a failed suite."""
    from dataclasses import replace

    from bench import targets

    missing = replace(targets.TARGETS["ours"], ws="realtime.no_such_module:BroadcastWebSocketProtocol")
    monkeypatch.setitem(targets.TARGETS, "ours", missing)
    resolved = targets.resolve("ours")
    assert resolved.ws == "websockets-sansio"
    assert "fallback" in resolved.name and "websockets-sansio" in resolved.name
    assert targets.resolve("ours-redis-uvicorn").ws == "websockets"


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_bench_smoke_measures_ingestion_on_every_path_against_the_raw_redis_floor(smoke):
    """Tests the publish scenario: each path from 1 and 4 producer processes, with its fraction of the raw floor."""
    stdout, payload, _ = smoke
    figures = payload["meta"]["publish"]
    assert set(figures) == {"raw floor", "streams", "publish()"}
    for path, rows in figures.items():
        for producers in ("1", "4"):
            row = rows[producers]
            assert row["producers"] == int(producers) and row["events"] > 0 and row["of_floor"] > 0, (path, row)
    assert "| raw floor |" in stdout and "| streams |" in stdout


def test_the_load_client_resumes_from_each_streams_position_and_counts_per_stream_offset():
    """Tests the client's bookkeeping: positions from hello, frames, resyncs; duplicates and gaps per stream offset."""
    import asyncio

    from bench.client import LoadClient, bench_fields, positions_token

    def compact(frame):  # as the server writes frames
        return json.dumps(frame, separators=(",", ":"))

    def durable(stream, offset, seq):
        position = {"stream": stream, "offset": offset, "epoch": "ab12"}
        return compact(
            {**position, "type": "bench.ping", "tenant": "b", "ts": "t", "data": {"sent_at": 1.5, "seq": seq}}
        )

    assert bench_fields(durable("tenant.3", 17, 4)) == ("tenant.3", 17, "ab12", 1.5, 4)
    assert (
        bench_fields('{"id":null,"type":"bench.ping","tenant":null,"ts":"t","data":{"sent_at":2.0}}')[:3] == (None,) * 3
    )

    async def scenario():
        client = LoadClient({"url": "ws://127.0.0.1:1/ws/", "cookies": ["c"]})
        sock = client.sockets[0]
        hello = {"offset": 10, "epoch": "ab12"}
        client.on_text(
            sock, compact({"id": None, "type": "hello", "data": {"positions": {"tenant.3": hello, "platform": hello}}})
        )
        for offset in (11, 12, 12, 14):  # 12 twice, 13 never
            client.on_text(sock, durable("tenant.3", offset, offset))
        resync = {"stream": "user.5", "reason": "history_lost", "offset": 2, "epoch": "cd34"}
        client.on_text(sock, compact({"id": None, "type": "resync", "data": resync}))
        return client, sock, await client.expect(3, timeout=0.1)

    client, sock, figures = asyncio.run(scenario())
    assert (figures["delivered"], figures["duplicates"], figures["offset_gaps"], figures["resyncs"]) == (3, 1, 1, 1)
    assert positions_token(sock.positions) == "platform:10:ab12,tenant.3:14:ab12,user.5:2:cd34"


def test_a_report_from_saved_json_rewrites_both_generated_blocks_from_the_same_run(tmp_path, monkeypatch):
    """Tests that --report --write-docs replaces the ingestion block too, not only the results block.

    Before, rebuilding the tables from a saved run left the ingestion block (and its four
    issue 14 verdicts) with an older run's figures under the newer run's results.
    """
    from bench import publish, report, run

    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        f"# Benchmarks\n\n{report.BEGIN}\nold results\n{report.END}\n\n"
        f"{publish.DOCS_BEGIN}\nold ingestion, 4,103 events/s\n{publish.DOCS_END}\n\n## History\n\nkept\n"
    )
    monkeypatch.setattr(report, "DOCS", docs)
    row = {"rate": 6138.0, "of_floor": 0.66, "producers": 1, "events": 18414, "redis_us_per_script": 20.9}
    figures = {
        path: {"1": {**row, "rate": rate}, "4": {**row, "producers": 4, "rate": 2 * rate}}
        for path, rate in (("raw floor", 9289.0), ("streams", 7000.0), ("publish()", 6138.0))
    }
    meta = saved_run_meta(started="2026-12-07T00:40:38+00:00", publish=figures)
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps({"meta": meta, "results": []}))

    run.report([str(saved)], write=True)

    text = docs.read_text()
    assert "old results" not in text and "old ingestion" not in text
    assert "generated by `python -m bench` at 2026-12-07T00:40:38+00:00" in text
    assert "6,138/s and 12,276/s" in text and ": met" in text
    assert text.endswith(f"{publish.DOCS_END}\n\n## History\n\nkept\n")
