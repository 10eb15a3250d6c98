"""HttpRepository and the HTTP clients against an in-memory portal (httpx.MockTransport)."""

import os
import random

import httpx
import pytest

from backup_agent.api import BlobClient, PortalClient, flatten_errors, redact_url
from backup_agent.backup import BackupError, run_backup
from backup_agent.chunker import ChunkerParams
from backup_agent.crypto import KeyBundle
from backup_agent.errors import (
    ExitCode,
    PortalRefused,
    PortalUnreachable,
    Unauthorized,
    exit_code_for,
)
from backup_agent.remote import HttpRepository, url_expiry
from backup_agent.repository import NotFound
from backup_agent.restore import run_restore
from backup_agent.scanner import tree_path

from .fake_portal import PORTAL, FakePortal

SMALL = ChunkerParams(1024, 4096, 16384)
PACK = 64 * 1024


class Clock:
    def __init__(self):
        self.slept = []

    def sleep(self, s):
        self.slept.append(s)


@pytest.fixture
def fake():
    return FakePortal()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def repo(fake, clock):
    portal = PortalClient(PORTAL, "bpm_token", transport=fake.portal_transport(), sleep=clock.sleep)
    blobs = BlobClient(transport=fake.blob_transport(), sleep=clock.sleep)
    return HttpRepository(portal, blobs)


@pytest.fixture
def keys():
    return KeyBundle.generate()


def make_tree(root):
    rnd = random.Random(7)
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("MARKER-PLAIN hello\n" * 100)
    (src / "sub" / "big.bin").write_bytes(rnd.randbytes(400_000))
    (src / "empty").write_bytes(b"")
    os.symlink("a.txt", src / "link")
    return src


def backup(repo, keys, src, tmp_path, **kw):
    return run_backup(
        repo,
        keys,
        [str(src)],
        cache_dir=tmp_path / "cache",
        chunker_params=SMALL,
        pack_size=PACK,
        **kw,
    )


def test_round_trip_through_http(repo, fake, keys, tmp_path):
    src = make_tree(tmp_path)
    result = backup(repo, keys, src, tmp_path)
    assert result.point_id in fake.points
    assert len(fake.packs) >= 3
    # nothing stored in "storage" contains the plaintext
    assert all(b"MARKER-PLAIN" not in blob for blob in fake.blobs.values())
    # every upload is a PUT to a write URL, each pack registered after its PUT
    puts = [p for m, p in fake.requests if m == "PUT" and p.startswith("blob:packs/")]
    assert len(puts) == len(fake.packs)

    target = tmp_path / "restore"
    res = run_restore(repo, keys, result.point_id, target)
    assert res.ok, res.failures
    out = target / tree_path(str(src))
    assert (out / "a.txt").read_text() == (src / "a.txt").read_text()
    assert (out / "sub" / "big.bin").read_bytes() == (src / "sub" / "big.bin").read_bytes()
    assert os.readlink(out / "link") == "a.txt"
    # download URLs were fetched in batches and cached, not once per range
    downloads = [p for m, p in fake.requests if p == "downloads/"]
    assert len(downloads) <= 3


def test_incremental_uploads_only_changes(repo, fake, keys, tmp_path):
    src = make_tree(tmp_path)
    backup(repo, keys, src, tmp_path)
    before = dict(fake.blobs)
    (src / "a.txt").write_text("changed\n")
    second = backup(repo, keys, src, tmp_path)
    new = {k: v for k, v in fake.blobs.items() if k not in before}
    assert sum(len(v) for k, v in new.items() if k.startswith("packs/")) < 5000
    assert second.stats["files_unchanged"] == 2


def test_storage_5xx_is_retried(repo, fake, keys, tmp_path, clock):
    src = make_tree(tmp_path)
    fake.blob_put_faults = [503, 500, 503]
    fake.blob_get_faults = [503]
    result = backup(repo, keys, src, tmp_path)
    assert repo.blobs.retries_done >= 3
    assert len(clock.slept) >= 3 and clock.slept[1] > clock.slept[0] * 0.9
    res = run_restore(repo, keys, result.point_id, tmp_path / "r")
    assert res.ok


def test_storage_failing_for_good_fails_the_backup_with_exit_7(fake, keys, tmp_path, clock):
    portal = PortalClient(PORTAL, "bpm_token", transport=fake.portal_transport(), sleep=clock.sleep)
    blobs = BlobClient(transport=fake.blob_transport(), sleep=clock.sleep, retries=2)
    repo = HttpRepository(portal, blobs)
    fake.blob_put_faults = [503] * 50
    with pytest.raises(BackupError) as info:
        backup(repo, keys, make_tree(tmp_path), tmp_path)
    assert exit_code_for(info.value) == ExitCode.STORAGE
    assert "Blob storage did not accept the upload" in str(info.value)
    assert not fake.points


def test_already_stored_pack_counts_as_success(repo, fake, keys):
    from backup_agent.crypto import encrypt_chunk
    from backup_agent.packs import PackWriter

    writer = PackWriter(keys)
    cid = "ab" * 32
    writer.add(cid, encrypt_chunk(keys, cid, b"x" * 100))
    name, buf, refs = writer.finish()
    fake.blobs[f"packs/{name}"] = bytes(buf)  # stored before, the answer was lost
    repo.store_pack(name, bytes(buf), refs)
    assert repo.stats["already_stored"] == 1
    assert repo.lookup_chunks([cid]) == {cid: name}


def test_expired_urls_are_renewed(repo, fake, keys, tmp_path):
    src = make_tree(tmp_path)
    fake.expire_urls_once = True
    result = backup(repo, keys, src, tmp_path)
    fake.expire_urls_once = True
    res = run_restore(repo, keys, result.point_id, tmp_path / "r")
    assert res.ok


def test_lost_commit_response_does_not_duplicate_the_point(repo, fake, keys, tmp_path):
    fake.drop_commit_response = True
    result = backup(repo, keys, make_tree(tmp_path), tmp_path)
    assert len(fake.points) == 1
    assert result.point_id in fake.points


def test_missing_pack_is_a_per_file_failure(repo, fake, keys, tmp_path):
    result = backup(repo, keys, make_tree(tmp_path), tmp_path)
    victim = next(k for k in fake.blobs if k.startswith("packs/"))
    del fake.blobs[victim]
    res = run_restore(repo, keys, result.point_id, tmp_path / "r")
    assert res.failures and all("could not be read" in f.reason for f in res.failures)


def test_missing_manifest_and_point_raise_not_found(repo):
    with pytest.raises(NotFound):
        repo.get_blob("manifest", "nope")
    with pytest.raises(NotFound):
        repo.get_point("00000000-0000-0000-0000-000000000000")


def test_other_machine_uses_machine_parameter(fake, clock):
    portal = PortalClient(PORTAL, "bpm_token", transport=fake.portal_transport(), sleep=clock.sleep)
    repo = HttpRepository(portal, BlobClient(transport=fake.blob_transport()), machine="other")
    repo.list_points()
    repo.locate_chunks(["ab" * 32])
    assert ("GET", "recovery-points/") in fake.requests


def test_throttle_applies_to_put_and_get_bodies(repo, fake, keys, tmp_path):
    class Counting:
        enabled = True

        def __init__(self):
            self.bytes = 0

        def consume(self, n):
            self.bytes += n

    lim = Counting()
    repo.limiter = lim
    result = backup(repo, keys, make_tree(tmp_path), tmp_path)
    uploaded = sum(len(v) for v in fake.blobs.values())
    assert lim.bytes == uploaded
    lim.bytes = 0
    run_restore(repo, keys, result.point_id, tmp_path / "r")
    assert lim.bytes > 400_000


# --------------------------------------------------------------------------- clients


def mock(handler):
    return httpx.MockTransport(handler)


def test_portal_retries_5xx_and_429_with_backoff(clock):
    answers = [503, 429, 502, 200]

    def handler(request):
        status = answers.pop(0)
        headers = {"Retry-After": "45"} if status == 429 else {}
        return httpx.Response(status, json={"ok": True}, headers=headers)

    client = PortalClient(PORTAL, "t", transport=mock(handler), sleep=clock.sleep)
    assert client.get("config/") == {"ok": True}
    assert len(clock.slept) == 3
    assert clock.slept[1] >= 45  # Retry-After honoured (a data-path rate limit is waited out)


def test_portal_unreachable_after_retries(clock):
    def handler(request):
        raise httpx.ConnectError("connection refused")

    client = PortalClient(PORTAL, "t", transport=mock(handler), sleep=clock.sleep, retries=3)
    with pytest.raises(PortalUnreachable) as info:
        client.get("config/")
    assert info.value.exit_code == ExitCode.PORTAL_UNREACHABLE
    assert "could not be reached" in info.value.message and "4 attempt" in info.value.message
    assert len(clock.slept) == 3


def test_non_idempotent_post_is_not_repeated_after_a_500(clock):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(500, text="boom")

    client = PortalClient(PORTAL, "t", transport=mock(handler), sleep=clock.sleep)
    with pytest.raises(PortalRefused):
        client.post("jobs/", {}, idempotent=False)
    assert len(calls) == 1


def test_non_idempotent_post_is_repeated_when_never_sent(clock):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(201, json={"id": "j"})

    client = PortalClient(PORTAL, "t", transport=mock(handler), sleep=clock.sleep)
    assert client.post("jobs/", {}, idempotent=False) == {"id": "j"}


def test_refusals_carry_the_portals_message():
    def handler(request):
        if request.url.path.endswith("config/"):
            return httpx.Response(401, json={"detail": "This machine's token is not valid."})
        return httpx.Response(400, json={"ids": ["'x' is not a chunk id (64 hex digits)."]})

    client = PortalClient(PORTAL, "t", transport=mock(handler))
    with pytest.raises(Unauthorized) as info:
        client.get("config/")
    assert info.value.exit_code == ExitCode.NOT_REGISTERED
    assert "token is not valid" in info.value.message
    with pytest.raises(PortalRefused) as info:
        client.post("chunks/lookup/", {"ids": ["x"]})
    assert info.value.message == "'x' is not a chunk id (64 hex digits)."
    assert info.value.exit_code == ExitCode.REFUSED


def test_helpers():
    assert flatten_errors({"a": ["one", "two"], "b": {"c": "three"}}) == "one two three"
    assert redact_url("http://u:p@proxy:3128/x?sig=secret") == "http://u:***@proxy:3128/x"
    assert url_expiry("http://x/b?se=1700000000&sig=1") == 1700000000
    assert url_expiry("http://x/b?se=2030-01-01T00:00:00Z&sig=1") == pytest.approx(1893456000)
    assert url_expiry("http://x/b") is None


def test_no_token_is_sent_to_storage(fake):
    seen = []

    def handler(request):
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(201)

    BlobClient(transport=mock(handler)).put("http://blob.test/x?se=9999999999", b"abc")
    assert seen == [None]


def test_store_pack_streams_a_spooled_file(repo, fake, keys, tmp_path):
    import tempfile

    from backup_agent.crypto import encrypt_chunk
    from backup_agent.packs import PackWriter

    writer = PackWriter(keys)
    cid = "cd" * 32
    writer.add(cid, encrypt_chunk(keys, cid, os.urandom(5000)))
    name, buf, refs = writer.finish()
    with tempfile.TemporaryFile() as spooled:
        spooled.write(buf)
        fake.blob_put_faults = [503]  # the retry must send the whole file again
        repo.store_pack(name, spooled, refs)
    assert fake.blobs[f"packs/{name}"] == bytes(buf)


def test_a_long_rate_limit_is_reported_not_waited_for(clock):
    def handler(request):
        return httpx.Response(
            429,
            json={"detail": "Request was throttled. Expected available in 1800 seconds."},
            headers={"Retry-After": "1800"},
        )

    client = PortalClient(PORTAL, "t", transport=mock(handler), sleep=clock.sleep)
    with pytest.raises(PortalRefused) as info:
        client.post("register/", {}, idempotent=False)
    assert "limiting requests" in info.value.message and "30 minutes" in info.value.message
    assert clock.slept == []
