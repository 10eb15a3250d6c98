"""The backup-agent command line, in-process, against the in-memory portal."""

import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from backup_agent import api as api_mod
from backup_agent import cli
from backup_agent.config import ConfigDir
from backup_agent.crypto import KeyBundle, unwrap_keys, wrap_keys
from backup_agent.errors import ExitCode
from backup_agent.scanner import tree_path

from .fake_portal import PORTAL, FakePortal

PASSPHRASE = "correct horse battery staple 42"


@pytest.fixture
def fake(monkeypatch, tmp_path):
    fake = FakePortal()

    def client(proxy, timeout, transport=None, **kwargs):
        return httpx.Client(transport=fake.routing_transport(), timeout=timeout)

    monkeypatch.setattr(api_mod, "_client", client)
    monkeypatch.setenv("BACKUP_AGENT_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return fake


def write(path: Path, text: str, mode=0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def credentials(tmp_path, secret="bpr_good", expires=None, **extra) -> str:
    expires = expires or datetime.now(UTC) + timedelta(days=10)
    doc = {
        "format": "backup-portal-vault-credentials/1",
        "portal_url": PORTAL,
        "vault_id": "v1",
        "vault_name": "vault-1",
        "subscription_id": "s1",
        "subscription_name": "Contoso Production",
        "resource_group": "backup-rg",
        "region": "westeurope",
        "registration_secret": secret,
        "expires_at": expires.isoformat(),
        **extra,
    }
    return write(tmp_path / f"{secret}.VaultCredentials", json.dumps(doc))


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def register(tmp_path, capsys, *extra, secret="bpr_good", passphrase=PASSPHRASE):
    pf = write(tmp_path / "pass.txt", passphrase + "\n")
    return run(
        capsys,
        "register",
        "--credentials",
        credentials(tmp_path, secret),
        "--passphrase-file",
        pf,
        "--cache-dir",
        tmp_path / "cache",
        "--machine-name",
        "web-01",
        *extra,
    )


def make_src(tmp_path) -> Path:
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello MARKER\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    os.symlink("a.txt", src / "link")
    return src


def test_register_backup_ls_restore(fake, tmp_path, capsys):
    code, out, err = register(tmp_path, capsys)
    assert code == 0, err
    assert "Vault           vault-1" in out and "Resource group  backup-rg" in out
    assert "cannot be restored" in out  # the lost-passphrase warning
    cdir = ConfigDir(tmp_path / "config")
    assert stat.S_IMODE(os.stat(cdir.path).st_mode) == 0o700
    for f in (cdir.config_file, cdir.keys_file):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    cfg = json.loads(cdir.config_file.read_text())
    assert cfg["token"] == "bpm_token" and cfg["machine_name"] == "web-01"
    assert fake.registered["host_name"] == "web-01" and not fake.registered["reregister"]
    # the vault got the wrapped keys, which the passphrase unlocks
    assert unwrap_keys(fake.key_blob, PASSPHRASE) == cdir.load_keys()
    assert PASSPHRASE.encode() not in fake.key_blob

    src = make_src(tmp_path)
    fake.document["policy"] = {"name": "daily", "items": [str(src)], "exclusions": []}
    code, out, err = run(capsys, "backup", "--wait")
    assert code == 0, err
    assert "Backup completed: recovery point" in out
    job = next(iter(fake.jobs.values()))
    assert job["trigger"] == "adhoc" and job["state"] == "completed" and job["point_id"]

    code, out, _ = run(capsys, "recovery-points")
    assert code == 0 and "ad hoc" in out
    code, out, _ = run(capsys, "ls", "latest", tree_path(str(src)))
    assert code == 0 and "a.txt" in out and "link -> a.txt" in out and "sub/" in out
    code, out, _ = run(capsys, "ls", "latest", tree_path(str(src)), "--json")
    names = [e["name"] for e in json.loads(out)["entries"]]
    assert names == ["a.txt", "link", "sub"]

    target = tmp_path / "restored"
    code, out, err = run(capsys, "restore", "--point", "latest", "--target", target)
    assert code == 0, err
    back = target / tree_path(str(src))
    assert (back / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert os.readlink(back / "link") == "a.txt"
    code, out, _ = run(capsys, "jobs")
    assert code == 0 and "restore" in out and "backup" in out


def test_expired_credentials_refused_before_calling_the_portal(fake, tmp_path, capsys):
    path = credentials(tmp_path, expires=datetime.now(UTC) - timedelta(days=1))
    code, out, err = run(capsys, "register", "--credentials", path, "--passphrase-file", "x")
    assert code == ExitCode.CREDENTIALS_REFUSED == 4
    assert "expired on" in err and "Download a new one" in err
    assert fake.requests == []


@pytest.mark.parametrize(
    ("secret", "message"),
    [("bpr_used", "already used"), ("bpr_forged", "not valid for this portal")],
)
def test_used_or_forged_credentials_relay_the_portals_refusal(
    fake, tmp_path, capsys, secret, message
):
    code, out, err = register(tmp_path, capsys, secret=secret)
    assert code == ExitCode.CREDENTIALS_REFUSED
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "config" / "config.json").exists()


def test_unreadable_credentials_file(fake, tmp_path, capsys):
    bad = write(tmp_path / "x.VaultCredentials", "not json")
    code, _, err = run(capsys, "register", "--credentials", bad)
    assert code == ExitCode.CREDENTIALS_REFUSED and "not a valid vault credentials file" in err
    code, _, err = run(capsys, "register", "--credentials", tmp_path / "missing")
    assert code == ExitCode.USAGE and "does not exist" in err


def test_register_twice_needs_reregister_and_the_right_passphrase(fake, tmp_path, capsys):
    assert register(tmp_path, capsys)[0] == 0
    code, _, err = register(tmp_path, capsys)
    assert code == ExitCode.USAGE and "--reregister" in err
    code, _, err = register(tmp_path, capsys, "--reregister", passphrase="a wrong passphrase 123")
    assert code == ExitCode.PASSPHRASE and "does not unlock" in err
    assert not (tmp_path / "config" / "keys.json").exists()
    fake.document["policy"] = {"name": "p", "items": [str(make_src(tmp_path))]}
    code, out, err = run(capsys, "backup")
    assert code == ExitCode.PASSPHRASE and "backup-agent unlock" in err
    code, out, err = register(tmp_path, capsys, "--reregister")
    assert code == 0, err
    assert "existing keys" in out and fake.registered["reregister"] is True


def test_passphrase_rules(fake, tmp_path, capsys):
    code, _, err = register(tmp_path, capsys, passphrase="too short")
    assert code == ExitCode.PASSPHRASE and "at least 16 characters" in err
    code, _, err = register(tmp_path, capsys, passphrase="sixteen chars but é accent")
    assert code == ExitCode.PASSPHRASE and "printable ASCII" in err


def test_generate_passphrase(fake, tmp_path, capsys):
    target = tmp_path / "secret" / "pass"
    target.parent.mkdir()
    argv = [
        "register",
        "--credentials",
        credentials(tmp_path),
        "--generate-passphrase",
        target,
        "--cache-dir",
        tmp_path / "cache",
    ]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    passphrase = target.read_text().strip()
    assert len(passphrase) >= 32
    unwrap_keys(fake.key_blob, passphrase)
    # never overwrites
    os.remove(tmp_path / "config" / "config.json")
    code, _, err = run(capsys, *argv)
    assert code == ExitCode.USAGE and "never overwrites" in err


def test_no_terminal_and_no_passphrase_file_is_a_usage_error(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = run(
        capsys, "register", "--credentials", credentials(tmp_path), "--cache-dir", tmp_path / "c"
    )
    assert code == ExitCode.USAGE and "--passphrase-file" in err


def test_not_registered(fake, tmp_path, capsys):
    for command in (["status"], ["backup"], ["jobs"], ["run"], ["recovery-points"]):
        code, _, err = run(capsys, *command)
        assert code == ExitCode.NOT_REGISTERED, command
        assert "not registered" in err and "backup-agent register" in err


def test_damaged_config(fake, tmp_path, capsys):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text("{")
    code, _, err = run(capsys, "status")
    assert code == ExitCode.NOT_REGISTERED and "damaged" in err


def test_no_policy_and_warnings(fake, tmp_path, capsys):
    assert register(tmp_path, capsys)[0] == 0
    code, _, err = run(capsys, "backup")
    assert code == ExitCode.REFUSED
    assert "No backup policy is assigned to this machine; assign one in the portal." in err
    src = make_src(tmp_path)
    fake.document["policy"] = {"name": "p", "items": [str(src), str(tmp_path / "gone")]}
    code, out, err = run(capsys, "backup")
    assert code == ExitCode.WARNINGS == 9
    assert "1 warning" in err and "gone" in err
    job = next(iter(fake.jobs.values()))
    assert job["state"] == "completed_with_warnings" and "gone" in job["warnings"][0]


def test_second_backup_is_refused_while_one_runs(fake, tmp_path, capsys):
    assert register(tmp_path, capsys)[0] == 0
    fake.document["policy"] = {"name": "p", "items": [str(make_src(tmp_path))]}
    lock = ConfigDir(tmp_path / "config").lock("backup", "busy")
    try:
        code, _, err = run(capsys, "backup")
    finally:
        lock.release()
    assert code == ExitCode.BUSY and "already running" in err


def test_unlock_other_machine(fake, tmp_path, capsys):
    assert register(tmp_path, capsys)[0] == 0
    other = KeyBundle.generate()
    fake.key_blob = wrap_keys(other, "the other machine's passphrase")
    write(tmp_path / "other.txt", "wrong passphrase, clearly\n")
    code, _, err = run(
        capsys, "unlock", "--machine", "other", "--passphrase-file", tmp_path / "other.txt"
    )
    assert code == ExitCode.PASSPHRASE and "does not unlock the keys of other" in err
    write(tmp_path / "other.txt", "the other machine's passphrase\n")
    code, out, err = run(
        capsys, "unlock", "--machine", "other", "--passphrase-file", tmp_path / "other.txt"
    )
    assert code == 0, err
    saved = tmp_path / "config" / "unlocked" / "other.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert ConfigDir(tmp_path / "config").load_unlocked("other") == other
    assert fake.facts["unlocked_machines"] == ["other"]
    code, _, err = run(capsys, "ls", "latest", "--machine", "nobody")
    assert code == ExitCode.PASSPHRASE and "unlock --machine nobody" in err


def test_change_passphrase_sends_pin_and_rewrapped_keys(fake, tmp_path, capsys):
    assert register(tmp_path, capsys)[0] == 0
    before = ConfigDir(tmp_path / "config").load_keys()
    new = write(tmp_path / "new.txt", "a brand new passphrase!\n")
    code, _, err = run(capsys, "change-passphrase", "--pin", "1234", "--passphrase-file", new)
    assert code == ExitCode.USAGE and "8 digits" in err
    code, out, err = run(capsys, "change-passphrase", "--pin", "12345678", "--passphrase-file", new)
    assert code == 0, err
    assert unwrap_keys(fake.key_blob, "a brand new passphrase!") == before


def test_set_throttling(fake, tmp_path, capsys):
    assert register(tmp_path, capsys)[0] == 0
    code, _, err = run(
        capsys, "set-throttling", "--enable", "--work-rate", "100kbps", "--off-rate", "1mbps"
    )
    assert code == ExitCode.USAGE and "512 Kbps to 1,023 Mbps" in err
    code, _, err = run(capsys, "set-throttling")
    assert code == ExitCode.USAGE
    code, _, err = run(
        capsys, "set-throttling", "--enable", "--work-rate", "1mbps", "--off-rate", "100mbps"
    )
    # the fake portal has no throttling endpoint: a clear refusal
    assert code == ExitCode.REFUSED and "throttling" in err
    assert ("PUT", "throttling/") in fake.requests


def test_usage_errors_exit_2(capsys):
    assert cli.main([]) == 2
    assert cli.main(["restore", "--point", "latest"]) == 2
    assert cli.main(["no-such-command"]) == 2
    assert cli.main(["--version"]) == 0
    assert cli.main(["backup", "--retain-until", "yesterday"]) in (2, 3)


def test_parsers():
    assert cli.parse_rate("512kbps") == 512_000
    assert cli.parse_rate("1 Mbps") == 1_000_000
    assert cli.parse_rate("1,023 Mbps") == 1_023_000_000
    assert cli.parse_rate("2048") == 2_048_000
    for bad in ("511kbps", "1024mbps", "fast"):
        with pytest.raises(cli.UsageError):
            cli.parse_rate(bad)
    assert cli.parse_days("mon-fri") == [0, 1, 2, 3, 4]
    assert cli.parse_days("sat-sun") == [5, 6]
    assert cli.parse_days("fri-mon") == [0, 4, 5, 6]
    assert cli.parse_days("mon,wed") == [0, 2]
    assert cli.parse_hours("9:00-17:30") == ("09:00", "17:30")
    with pytest.raises(cli.UsageError):
        cli.parse_hours("17:00-09:00")
    future = cli.parse_retain_until("2999-01-31")
    assert future.startswith("2999-01-31T23:59:59")
    with pytest.raises(cli.UsageError):
        cli.parse_retain_until("2001-01-01")


def test_readme_documents_every_exit_code():
    readme = (Path(cli.__file__).parent / "README.md").read_text()
    table = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*`?(\w+)`?", readme, re.MULTILINE))
    for code in ExitCode:
        assert str(int(code)) in table, f"exit code {int(code)} missing from the README"
        assert table[str(int(code))] == code.name
