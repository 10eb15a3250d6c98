"""The service's schedule, commands and progress reporting, with a controlled clock."""

import os
import threading
import time
from datetime import UTC, datetime

import pytest

from backup_agent.config import AgentConfig, ConfigDir
from backup_agent.crypto import KeyBundle, wrap_keys
from backup_agent.jobs import Agent, iso, limiter_from_document
from backup_agent.progress import PortalReporter, TerminalProgress, human_duration
from backup_agent.service import Service

from .fake_portal import PORTAL, FakePortal


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def fake():
    return FakePortal()


@pytest.fixture
def agent(fake, tmp_path):
    cdir = ConfigDir(tmp_path / "config")
    cdir.save(
        AgentConfig(
            portal_url=PORTAL,
            machine_id="6f1c0d8e-0000-4000-8000-000000000001",
            machine_name="web-01",
            token="bpm_token",
            cache_dir=str(tmp_path / "cache"),
        )
    )
    bundle = KeyBundle.generate()
    cdir.save_keys("web-01", wrap_keys(bundle, "x" * 16), bundle, uploaded=False)
    src = tmp_path / "data"
    src.mkdir()
    (src / "f.txt").write_text("some data\n" * 100)
    fake.document["policy"] = {"name": "daily", "items": [str(src)]}
    a = Agent(
        cdir, retries=0, transport=fake.portal_transport(), blob_transport=fake.blob_transport()
    )
    yield a
    a.close()


def wait_jobs(service):
    for t in list(service.jobs):
        t.join(30)
        assert not t.is_alive()


def scheduled_jobs(fake):
    return [j for j in fake.jobs.values() if j["trigger"] == "scheduled"]


def test_poll_caches_document_reports_facts_uploads_keys(agent, fake):
    service = Service(agent, long_poll=False)
    service.poll_once()
    assert service.document["policy"]["name"] == "daily"
    assert agent.cdir.load_document()[0]["policy"]["name"] == "daily"
    assert ("PATCH", "config/") in fake.requests
    assert fake.key_blob == agent.cdir.wrapped_keys()
    fake.requests.clear()
    service.poll_once()  # unchanged: 304, nothing re-sent
    assert fake.requests == [("GET", "config/")]


def test_scheduled_run_fires_at_its_instant(agent, fake):
    t0 = time.time()
    fake.document["next_runs"] = [iso(t0 + 10), iso(t0 + 86400)]
    clock = Clock(t0)
    service = Service(agent, long_poll=False, clock=clock)
    service.state["last_run_handled"] = iso(t0)
    service.poll_once()
    service._schedule_tick()
    assert not service.jobs
    clock.t = t0 + 11
    service._schedule_tick()
    wait_jobs(service)
    (job,) = scheduled_jobs(fake)
    assert job["state"] == "completed" and job["point_id"]
    assert job["details"]["scheduled_for"] == iso(t0 + 10)
    assert service.state["pending_run"] is None
    clock.t = t0 + 20
    service._schedule_tick()
    assert len(scheduled_jobs(fake)) == 1  # once per instant


def test_portal_down_at_the_scheduled_time_retries_then_runs(agent, fake):
    t0 = time.time()
    fake.document["next_runs"] = [iso(t0 + 10), iso(t0 + 86400)]
    clock = Clock(t0)
    service = Service(agent, long_poll=False, clock=clock, retry_interval=60)
    service.state["last_run_handled"] = iso(t0)
    service.poll_once()
    fake.down = True
    clock.t = t0 + 11
    service._schedule_tick()
    wait_jobs(service)
    pending = service.state["pending_run"]
    assert pending["attempts"] == 1 and pending["first_failure"]
    assert not fake.jobs
    clock.t = t0 + 40  # before the retry interval: nothing
    service._schedule_tick()
    assert not [t for t in service.jobs if t.is_alive()]
    fake.down = False
    clock.t = t0 + 72
    service._schedule_tick()
    wait_jobs(service)
    (job,) = scheduled_jobs(fake)
    assert job["state"] == "completed"
    assert job["details"]["delayed_seconds"] >= 60
    assert "could not be reached" in job["details"]["delayed_because"]


def test_run_missed_until_the_next_one_is_reported_when_the_portal_returns(agent, fake):
    t0 = time.time()
    fake.document["next_runs"] = [iso(t0 + 10), iso(t0 + 100), iso(t0 + 86400)]
    clock = Clock(t0)
    service = Service(agent, long_poll=False, clock=clock, retry_interval=60)
    service.state["last_run_handled"] = iso(t0)
    service.poll_once()
    fake.down = True
    for t in (11, 71):
        clock.t = t0 + t
        service._schedule_tick()
        wait_jobs(service)
    clock.t = t0 + 101  # the next run is due: the first one is missed
    service._schedule_tick()
    wait_jobs(service)
    assert service.state["missed"][0]["scheduled_for"] == iso(t0 + 10)
    assert agent.cdir.load_state()["missed"]  # survives a restart
    fake.down = False
    service.poll_once()  # the portal answers: the missed run is reported
    missed = [j for j in scheduled_jobs(fake) if j["details"].get("missed")]
    assert len(missed) == 1 and missed[0]["state"] == "failed"
    assert "did not run: the portal could not be reached" in missed[0]["error"]
    assert not service.state["missed"]
    clock.t = t0 + 162
    service._schedule_tick()
    wait_jobs(service)
    ran = [j for j in scheduled_jobs(fake) if not j["details"].get("missed")]
    assert len(ran) == 1 and ran[0]["details"]["scheduled_for"] == iso(t0 + 100)


def test_runs_missed_while_the_agent_was_off_run_once(agent, fake):
    t0 = time.time()
    fake.document["next_runs"] = [iso(t0 - 7200), iso(t0 - 3600), iso(t0 + 3600)]
    service = Service(agent, long_poll=False, clock=Clock(t0))
    service.state["last_run_handled"] = iso(t0 - 86400)
    service.poll_once()
    service._schedule_tick()
    wait_jobs(service)
    (job,) = scheduled_jobs(fake)
    assert job["details"]["scheduled_for"] == iso(t0 - 3600)


def test_commands_browse_backup_restore(agent, fake, tmp_path):
    service = Service(agent, long_poll=False)
    fake.commands.append({"id": "c1", "kind": "backup", "payload": {}, "state": "pending"})
    service.poll_once()
    wait_jobs(service)
    c1 = fake.commands[0]
    assert c1["state"] == "done" and c1["result"]["ok"] is True
    job = fake.jobs[c1["result"]["result"]["job_id"]]
    assert job["trigger"] == "portal" and job["command_id"] == "c1"
    src = fake.document["policy"]["items"][0].strip("/")
    fake.commands.append(
        {"id": "c2", "kind": "browse", "payload": {"point_id": "latest", "path": src}}
    )
    target = tmp_path / "restore-here"
    fake.commands.append(
        {
            "id": "c3",
            "kind": "restore",
            "payload": {"point_id": "latest", "target": str(target), "paths": [src + "/f.txt"]},
        }
    )
    fake.commands.append({"id": "c4", "kind": "defrag", "payload": {}})
    service.poll_once()
    wait_jobs(service)
    by_id = {c["id"]: c for c in fake.commands}
    entries = by_id["c2"]["result"]["result"]["entries"]
    assert [(e["name"], e["type"], e["size"]) for e in entries] == [("f.txt", "file", 1000)]
    assert abs(entries[0]["mtime"] - datetime.now(UTC).timestamp()) < 600
    assert by_id["c3"]["result"]["ok"], by_id["c3"]
    assert (target / src / "f.txt").exists(), fake.jobs[by_id["c3"]["result"]["result"]["job_id"]][
        "error"
    ]
    assert by_id["c4"]["result"]["ok"] is False
    assert "does not know the command" in by_id["c4"]["result"]["result"]["error"]


def test_stopping_the_service_fails_the_running_backup_cleanly(agent, fake, tmp_path):
    big = tmp_path / "data" / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    service = Service(agent, long_poll=False)
    service.document = fake.document

    class Slow:
        enabled = True

        def consume(self, n):
            time.sleep(0.05)

    agent.limiter.target = Slow()
    agent.apply_throttling = lambda doc: None
    errors = []

    def backup():
        try:
            agent.backup(trigger="portal", document=fake.document, cancel=service.stop)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=backup)
    t.start()
    time.sleep(1.0)
    service.request_stop()
    t.join(30)
    (job,) = fake.jobs.values()
    assert errors and errors[0].exit_code == 130
    assert job["state"] == "failed" and "stopped" in job["error"]
    assert not fake.points


def test_portal_reporter_sends_at_most_twice_a_second():
    sent = []
    reporter = PortalReporter(lambda v: sent.append((time.monotonic(), v)), max_per_second=2)
    start = time.monotonic()
    for i in range(200):
        reporter.update({"files_done": i})
        time.sleep(0.005)
    reporter.close({"files_done": 999})
    elapsed = time.monotonic() - start
    assert sent[-1][1] == {"files_done": 999}
    assert len(sent) <= elapsed * 2 + 2
    gaps = [b[0] - a[0] for a, b in zip(sent[:-2], sent[1:-1], strict=True)]
    assert all(g >= 0.45 for g in gaps)


def test_portal_reporter_survives_send_failures():
    def boom(values):
        raise RuntimeError("portal down")

    reporter = PortalReporter(boom)
    reporter.update({"files_done": 1})
    reporter.close()
    assert reporter.failures == 1


def test_terminal_progress_line():
    from backup_agent.backup import BackupProgress

    class Stream:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    s = Stream()
    bar = TerminalProgress(s)
    bar(BackupProgress("uploading", 10, 5, 1000, 500, 100, 50, 2048.0, 75.0))
    assert "50.0%" in s.text and "5/10 files" in s.text and "2.0 KiB/s" in s.text
    assert "ETA 01:15" in s.text
    bar.close()
    assert human_duration(3725) == "1:02:05"
    quiet = TerminalProgress(Stream(), enabled=False)
    quiet(BackupProgress("uploading"))


def test_limiter_from_document():
    assert limiter_from_document({"throttling": {"enabled": False}}) is None
    doc = {
        "time_zone": "Europe/Berlin",
        "throttling": {
            "enabled": True,
            "work_days": [0, 1, 2, 3, 4],
            "work_start": "09:00",
            "work_end": "17:00",
            "work_hours_kbps": 1000,
            "off_hours_kbps": 100000,
        },
    }
    lim = limiter_from_document(doc)
    monday_noon = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert lim.schedule.rate_at(monday_noon) == 1_000_000
    assert lim.schedule.rate_at(datetime(2026, 1, 4, 12, 0)) == 100_000_000
    bad = {"throttling": {"enabled": True, "work_hours_kbps": 1}}
    assert limiter_from_document(bad) is None


def test_missed_runs_are_reported_once_even_from_two_threads(agent, fake):
    service = Service(agent, long_poll=False)
    service.state["missed"] = [{"scheduled_for": iso(time.time() - 60), "error": "did not run"}]
    threads = [threading.Thread(target=service._report_missed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([j for j in fake.jobs.values() if j["details"].get("missed")]) == 1
    assert service.state["missed"] == []
