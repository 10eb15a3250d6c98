#!/usr/bin/env python3
"""Benchmark the backup agent's data engine against restic on the same data.

    python benchmarks/agent_vs_restic.py [--size-gib 1] [--workdir DIR] [--keep]

Generates one deterministic data set (large random files, log-like text, thousands of
small files, duplicates), then for both tools, each run as a separate process:

1. first backup, 2. backup after changing 1% of the files, 3. backup with nothing
changed, 4. full restore of the latest point.

Reports wall time, MB/s (data-set size / wall time), stored repository bytes and peak
RSS (``ru_maxrss`` of the child via ``os.wait4``), plus ratios ours/restic.
Both repositories are local directories on the same disk; both tools fsync their pack
files. ``restic`` must be on PATH (Debian package ``restic``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
PASSWORD = "benchmark-passphrase-not-secret"


# --------------------------------------------------------------------------- our side


def _run_ours(argv: list[str]) -> int:
    """Internal entry: ``--_run-ours backup|restore ...``; prints a JSON summary."""
    sys.path.insert(0, str(REPO_ROOT))
    from backup_agent.backup import run_backup
    from backup_agent.crypto import KeyBundle
    from backup_agent.repository import LocalRepository
    from backup_agent.restore import run_restore

    p = argparse.ArgumentParser(prog="--_run-ours")
    p.add_argument("op", choices=["init", "backup", "restore"])
    p.add_argument("--repo", required=True)
    p.add_argument("--keyfile", required=True)
    p.add_argument("--cache")
    p.add_argument("--target")
    p.add_argument("--path", action="append", dest="paths", default=[])
    a = p.parse_args(argv)
    if a.op == "init":
        raw = os.urandom(96)
        Path(a.keyfile).write_bytes(raw)
        LocalRepository(a.repo).close()
        print(json.dumps({"ok": True}))
        return 0
    raw = Path(a.keyfile).read_bytes()
    keys = KeyBundle(raw[:32], raw[32:64], raw[64:96])
    repo = LocalRepository(a.repo, create=False)
    if a.op == "backup":
        res = run_backup(repo, keys, a.paths, cache_dir=a.cache)
        out = dict(res.stats, point=res.point_id, warnings=len(res.warnings))
    else:
        point = repo.list_points()[-1]
        res = run_restore(repo, keys, point, a.target)
        out = {
            "files": res.files_restored,
            "bytes": res.bytes_restored,
            "failures": len(res.failures),
        }
        if res.failures:
            print(json.dumps(out))
            return 2
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- data set


def _text_block(rnd: random.Random, size: int) -> bytes:
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    paths = ["/api/v1/items", "/api/v1/users", "/login", "/static/app.js", "/api/v1/backup"]
    agents = ["Mozilla/5.0", "curl/8.1", "python-httpx/0.27", "Go-http-client/1.1"]
    parts = []
    n = 0
    t = 1_700_000_000 + rnd.randrange(10**6)
    while n < size:
        t += rnd.randrange(3)
        line = (
            f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}.{rnd.randrange(1000):03d}Z "
            f"{rnd.choice(levels)} pid={rnd.randrange(1, 65535)} req={rnd.getrandbits(64):016x} "
            f'"GET {rnd.choice(paths)}/{rnd.randrange(100000)}" {rnd.choice((200, 200, 304, 404))}'
            f" {rnd.randrange(100, 90000)}B {rnd.random() * 900:.1f}ms {rnd.choice(agents)}\n"
        )
        parts.append(line)
        n += len(line)
    return "".join(parts).encode()[:size]


def generate_dataset(root: Path, size_bytes: int, seed: int = 20240601) -> dict:
    rnd = random.Random(seed)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    made = {"files": 0, "bytes": 0}

    def write(p: Path, data: bytes) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        made["files"] += 1
        made["bytes"] += len(data)

    # 50% large random (incompressible) files, 64 MiB each
    big_total = size_bytes // 2
    i = 0
    while big_total > 0:
        n = min(64 * MiB, big_total)
        with open(_mk(root / "media") / f"video_{i:03d}.bin", "wb") as f:
            left = n
            while left:
                k = min(8 * MiB, left)
                f.write(rnd.randbytes(k))
                left -= k
        made["files"] += 1
        made["bytes"] += n
        big_total -= n
        i += 1
    # 25% log-like text, 8-24 MiB files (built from 1 MiB blocks, each unique)
    text_total = size_bytes // 4
    i = 0
    while text_total > 0:
        n = min(rnd.randrange(8, 25) * MiB, text_total)
        with open(_mk(root / "logs") / f"app-{i:03d}.log", "wb") as f:
            left = n
            while left:
                k = min(MiB, left)
                f.write(_text_block(rnd, k))
                left -= k
        made["files"] += 1
        made["bytes"] += n
        text_total -= n
        i += 1
    # 15% small files (1-64 KiB), half text half binary, in a folder tree
    small_total = size_bytes * 15 // 100
    i = 0
    while small_total > 0:
        n = min(rnd.randrange(1024, 64 * 1024), small_total)
        d = root / "projects" / f"p{i % 37:02d}" / f"src{i % 7}"
        data = _text_block(rnd, n) if i % 2 else rnd.randbytes(n)
        write(d / f"file_{i:05d}.{'txt' if i % 2 else 'dat'}", data)
        small_total -= n
        i += 1
    # 10% duplicates: copies of random large and small files
    dup_total = size_bytes // 10
    sources = sorted((p.stat().st_size, p) for p in root.rglob("*") if p.is_file())
    i = 0
    while dup_total > 0:
        fitting = [p for size, p in sources if size <= dup_total]
        if not fitting:
            break
        src = rnd.choice(fitting[-200:]) if i % 3 == 0 else rnd.choice(fitting)
        dst = _mk(root / "copies") / f"copy_{i:04d}_{src.name}"
        shutil.copyfile(src, dst)
        n = dst.stat().st_size
        made["files"] += 1
        made["bytes"] += n
        dup_total -= n
        i += 1
    return made


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def change_one_percent(root: Path, seed: int = 7) -> dict:
    """Modify 1% of the files (in place, small regions, and some appends)."""
    rnd = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    pick = rnd.sample(files, max(1, len(files) // 100))
    changed_bytes = 0
    for p in pick:
        size = p.stat().st_size
        with open(p, "r+b") as f:
            if p.suffix == ".log":
                f.seek(0, 2)
                add = _text_block(rnd, 256 * 1024)
                f.write(add)
                changed_bytes += len(add)
            else:
                off = rnd.randrange(max(1, size - 4096)) if size > 4096 else 0
                f.seek(off)
                f.write(rnd.randbytes(min(4096, size)))
                changed_bytes += min(4096, size)
    return {"files": len(pick), "bytes": changed_bytes}


# --------------------------------------------------------------------------- measuring


def _measure_here(cmd: list[str], env: dict | None, cwd: str | None) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
            "cpu": usage.ru_utime + usage.ru_stime,
            "rc": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def _launcher() -> int:
    """``--_launcher``: run commands read as JSON lines from stdin, answer on stdout.

    Linux carries a parent's peak RSS into a child's ``ru_maxrss`` across (v)fork + exec,
    so children are started from this small process, begun before the data set is
    generated, rather than from the (large) benchmark process.
    """
    for line in sys.stdin:
        req = json.loads(line)
        res = _measure_here(req["cmd"], req.get("env"), req.get("cwd"))
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()
    return 0


_LAUNCHER: subprocess.Popen | None = None


def start_launcher() -> None:
    global _LAUNCHER
    _LAUNCHER = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--_launcher"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def run_measured(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Run ``cmd``; return wall seconds, the child's peak RSS (MiB), CPU seconds, output."""
    if _LAUNCHER is not None:
        _LAUNCHER.stdin.write(json.dumps({"cmd": cmd, "env": env, "cwd": cwd}) + "\n")
        _LAUNCHER.stdin.flush()
        res = json.loads(_LAUNCHER.stdout.readline())
    else:
        res = _measure_here(cmd, env, cwd)
    if res["rc"] != 0:
        raise RuntimeError(f"{cmd[0]} failed ({res['rc']}): {res['stderr'][-2000:]}")
    return res


def dir_bytes(p: Path) -> int:
    total = 0
    for dirpath, _d, files in os.walk(p):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def tree_summary(p: Path) -> tuple[int, int]:
    n = b = 0
    for dirpath, _d, files in os.walk(p):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            n += 1
            b += st.st_size
    return n, b


# --------------------------------------------------------------------------- main


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--_run-ours":
        return _run_ours(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--_launcher":
        return _launcher()
    start_launcher()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--reuse-data", action="store_true", help="reuse an existing data set")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--repeat", type=int, default=1, help="rounds (medians are reported)")
    a = ap.parse_args()
    restic = shutil.which("restic")
    if not restic:
        print("restic is not installed (apt-get install restic)", file=sys.stderr)
        return 1
    work = a.workdir or Path(tempfile.mkdtemp(prefix="agent-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    size = int(a.size_gib * 1024 * MiB)
    if a.reuse_data and data.exists():
        # (the file count and size may have grown from earlier "1% changed" steps)
        made = dict(zip(("files", "bytes"), tree_summary(data), strict=True))
    else:
        t = time.perf_counter()
        made = generate_dataset(data, size)
        (work / "change-generation").unlink(missing_ok=True)
        print(
            f"data set: {made['files']} files, {made['bytes'] / MiB:.0f} MiB "
            f"(generated in {time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    py = sys.executable
    me = str(Path(__file__).resolve())
    version = subprocess.run([restic, "version"], capture_output=True, text=True).stdout.strip()
    print(
        f"\nrestic: {version}; python: {sys.version.split()[0]}; cpus: {os.cpu_count()}; "
        f"load average before: {os.getloadavg()[0]:.1f}"
    )
    # Restores of earlier rounds are only deleted at the end: ext4 skips recently freed
    # inodes when it allocates new ones (scanning them costs system time), so deleting
    # thousands of files just before a restore would slow down whichever tool runs first.
    for old in _restore_dirs(work):
        shutil.rmtree(old, ignore_errors=True)
    rounds = []
    for rep in range(a.repeat):
        print(f"\nround {rep + 1}/{a.repeat}")
        print(_HEADER)
        rounds.append(_run_round(work, data, made, py, me, restic, rep))
    rows = _median_rows(rounds)
    if a.repeat > 1:
        print(f"\nmedian of {a.repeat} rounds")
        print(_HEADER)
        for row in rows:
            _print_row(row)
    _print_summary(rows)
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "restic": version,
                    "cpus": os.cpu_count(),
                    "dataset": made,
                    "median": rows,
                    "rounds": rounds,
                },
                indent=2,
            )
        )
    if not a.keep:
        for old in _restore_dirs(work):
            shutil.rmtree(old, ignore_errors=True)
    if not a.keep and a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


_KEEP = ("wall", "rss_mib", "cpu")
_DIRS = ("ours-repo", "ours-cache", "restic-repo", "restic-cache")


def _restore_dirs(work: Path) -> list[Path]:
    return sorted(work.glob("ours-restore*")) + sorted(work.glob("restic-restore*"))


def _run_round(work: Path, data: Path, made: dict, py: str, me: str, restic: str, rep: int):
    for sub in _DIRS:
        shutil.rmtree(work / sub, ignore_errors=True)
    key = str(work / "ours.key")
    ours = [py, me, "--_run-ours"]
    renv = dict(os.environ, RESTIC_PASSWORD=PASSWORD, RESTIC_CACHE_DIR=str(work / "restic-cache"))
    renv.pop("RESTIC_REPOSITORY", None)
    rrepo = str(work / "restic-repo")
    orepo = str(work / "ours-repo")
    run_measured(ours + ["init", "--repo", orepo, "--keyfile", key])
    run_measured([restic, "-r", rrepo, "init"], env=renv)
    ocache = str(work / "ours-cache")
    cmds = {
        "backup": {
            "ours": (
                ours
                + ["backup", "--repo", orepo, "--keyfile", key, "--cache", ocache]
                + ["--path", str(data)],
                None,
            ),
            "restic": ([restic, "-r", rrepo, "backup", "-q", str(data)], renv),
        },
        "restore": {
            "ours": (
                ours
                + ["restore", "--repo", orepo, "--keyfile", key]
                + ["--target", str(work / f"ours-restore-{rep}")],
                None,
            ),
            "restic": (
                [
                    restic,
                    "-r",
                    rrepo,
                    "restore",
                    "latest",
                    "--target",
                    str(work / f"restic-restore-{rep}"),
                ],
                renv,
            ),
        },
    }
    # alternate who goes first so neither always gets the warmer cache
    order = ("ours", "restic") if rep % 2 == 0 else ("restic", "ours")
    rows = []

    def phase(name: str, op: str) -> None:
        row: dict = {"phase": name}
        for who in order:
            os.sync()  # do not charge one tool for the other's write-back
            cmd, env = cmds[op][who]
            m = run_measured(cmd, env=env, cwd=str(REPO_ROOT))
            row[who] = {k: m[k] for k in _KEEP} | {
                "stored": dir_bytes(work / f"{who}-repo"),
                "mb": made["bytes"],
            }
            if who == "ours":
                row["ours_stats"] = json.loads(m["stdout"].strip().splitlines()[-1])
        rows.append(row)
        _print_row(row)

    phase("first backup", "backup")
    # a new seed for every change ever made to this data set (also across --reuse-data
    # runs): rewriting the same bytes again would not change any content
    gen_file = work / "change-generation"
    gen = int(gen_file.read_text()) + 1 if gen_file.exists() else 1
    gen_file.write_text(str(gen))
    ch = change_one_percent(data, seed=gen)
    phase(f"1% changed ({ch['files']} files)", "backup")
    phase("nothing changed", "backup")
    phase("full restore", "restore")
    # sanity: both restores hold the whole data set
    rel = str(data).lstrip("/")
    want = tree_summary(data)
    for who in ("ours", "restic"):
        got = tree_summary(work / f"{who}-restore-{rep}" / rel)
        if got != want:
            print(f"WARNING: {who} restore differs: {got} != {want}")
    _verify_sample(data, work / f"ours-restore-{rep}" / rel)
    return rows


def _median_rows(rounds: list[list[dict]]) -> list[dict]:
    out = []
    for i, row in enumerate(rounds[0]):
        med: dict = {"phase": row["phase"].split(" (")[0]}
        for who in ("ours", "restic"):
            med[who] = {k: statistics.median(r[i][who][k] for r in rounds) for k in row[who]}
        out.append(med)
    return out


def _verify_sample(src: Path, restored: Path, n: int = 50) -> None:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    rnd = random.Random(1)
    for p in rnd.sample(files, min(n, len(files))):
        q = restored / p.relative_to(src)
        if q.read_bytes() != p.read_bytes():
            print(f"WARNING: restored content differs for {p}")
            return
        if q.stat().st_mtime_ns != p.stat().st_mtime_ns:
            print(f"WARNING: restored mtime differs for {p}")
            return


_HEADER = (
    f"{'phase':<26} {'tool':<7} {'wall s':>8} {'MiB/s':>8} {'stored MiB':>11} "
    f"{'peak RSS MiB':>13} {'CPU s':>7}"
)


def _print_row(row: dict) -> None:
    for who in ("ours", "restic"):
        m = row[who]
        rate = m["mb"] / MiB / m["wall"] if m["wall"] else 0.0
        print(
            f"{row['phase'] if who == 'ours' else '':<26} {who:<7} {m['wall']:8.2f} {rate:8.1f} "
            f"{m['stored'] / MiB:11.1f} {m['rss_mib']:13.1f} {m['cpu']:7.2f}",
            flush=True,
        )


def _print_summary(rows: list[dict]) -> None:
    print("\nours / restic        speed (x)   stored    peak RSS")
    for row in rows:
        o, r = row["ours"], row["restic"]
        speed = r["wall"] / o["wall"] if o["wall"] else float("inf")
        print(
            f"{row['phase']:<22} {speed:8.2f}x {o['stored'] / r['stored']:8.3f} "
            f"{o['rss_mib'] / r['rss_mib']:9.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
