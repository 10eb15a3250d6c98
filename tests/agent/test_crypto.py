import json
import string
import types

import pytest

from backup_agent.crypto import (
    IntegrityError,
    InvalidPassphrase,
    KeyBundle,
    WrongPassphrase,
    chunk_id,
    decrypt_blob,
    decrypt_chunk,
    encrypt_blob,
    encrypt_chunk,
    generate_passphrase,
    rewrap_keys,
    unwrap_keys,
    validate_passphrase,
    wrap_keys,
)


@pytest.fixture
def settings():
    """The agent needs no Django: satisfy the repository-wide autouse fixture that asks
    for pytest-django's ``settings`` so these tests also run with ``-p no:django``."""
    return types.SimpleNamespace()


FAST = {"n": 2**12}  # keep the suite fast; the default (2**15) is exercised once below
PASS = "correct horse battery staple!"


def test_validate_passphrase_messages():
    validate_passphrase("x" * 16)
    with pytest.raises(InvalidPassphrase, match="at least 16 characters"):
        validate_passphrase("short")
    with pytest.raises(InvalidPassphrase, match="printable ASCII"):
        validate_passphrase("pässwörd-long-enough-1234")
    with pytest.raises(InvalidPassphrase, match="printable ASCII"):
        validate_passphrase("tab\tinside-the-passphrase")


def test_generate_passphrase_is_strong_and_valid():
    seen = set()
    for _ in range(20):
        p = generate_passphrase()
        validate_passphrase(p)
        assert len(p) >= 32
        assert all(c in string.printable and c not in string.whitespace for c in p)
        seen.add(p)
    assert len(seen) == 20


def test_wrap_unwrap_roundtrip_default_params():
    bundle = KeyBundle.generate()
    blob = wrap_keys(bundle, PASS)
    doc = json.loads(blob)
    assert doc["kdf"] == "scrypt" and doc["n"] == 2**15 and doc["r"] == 8 and doc["p"] == 1
    assert len(__import__("base64").b64decode(doc["salt"])) == 16
    # the blob must not contain key material
    for key in (bundle.chunk_key, bundle.id_key, bundle.manifest_key):
        assert key not in blob and key.hex().encode() not in blob
    assert unwrap_keys(blob, PASS) == bundle


def test_wrong_passphrase_fails_clearly():
    blob = wrap_keys(KeyBundle.generate(), PASS, scrypt_params=FAST)
    with pytest.raises(WrongPassphrase) as ei:
        unwrap_keys(blob, "not the right passphrase")
    assert str(ei.value) == "The passphrase does not unlock this machine's keys."


def test_salt_is_random_per_wrap():
    b = KeyBundle.generate()
    a1 = json.loads(wrap_keys(b, PASS, scrypt_params=FAST))
    a2 = json.loads(wrap_keys(b, PASS, scrypt_params=FAST))
    assert a1["salt"] != a2["salt"] and a1["ciphertext"] != a2["ciphertext"]


def test_tampered_key_blob_is_rejected():
    blob = wrap_keys(KeyBundle.generate(), PASS, scrypt_params=FAST)
    doc = json.loads(blob)
    doc["n"] = 2**13  # header is authenticated too
    with pytest.raises(WrongPassphrase):
        unwrap_keys(json.dumps(doc).encode(), PASS)
    with pytest.raises(ValueError, match="damaged"):
        unwrap_keys(b"not json", PASS)


def test_rewrap_changes_passphrase_keeps_keys():
    bundle = KeyBundle.generate()
    blob = wrap_keys(bundle, PASS, scrypt_params=FAST)
    new = rewrap_keys(blob, PASS, "a brand new passphrase 42")
    assert unwrap_keys(new, "a brand new passphrase 42") == bundle
    with pytest.raises(WrongPassphrase):
        unwrap_keys(new, PASS)
    with pytest.raises(WrongPassphrase):
        rewrap_keys(blob, "wrong passphrase here!", "another passphrase 1234")
    with pytest.raises(InvalidPassphrase):
        rewrap_keys(blob, PASS, "short")


def test_chunk_ids_are_keyed():
    a, b = KeyBundle.generate(), KeyBundle.generate()
    data = b"hello world" * 100
    assert chunk_id(a, data) == chunk_id(a, data)
    assert chunk_id(a, data) != chunk_id(b, data)
    assert len(chunk_id(a, data)) == 64


@pytest.mark.parametrize("data", [b"", b"x", b"abc" * 100000, bytes(range(256)) * 4096])
def test_chunk_record_roundtrip(data):
    k = KeyBundle.generate()
    cid = chunk_id(k, data)
    rec = encrypt_chunk(k, cid, data)
    assert decrypt_chunk(k, cid, rec) == data
    if len(data) > 1000 and data == b"abc" * 100000:
        assert len(rec) < len(data) // 10  # compressed
    # fresh nonce each time
    assert encrypt_chunk(k, cid, data) != rec


def test_incompressible_chunk_stored_raw():
    import os

    k = KeyBundle.generate()
    data = os.urandom(100_000)
    rec = encrypt_chunk(k, chunk_id(k, data), data)
    assert len(rec) == len(data) + 12 + 16 + 1


def test_tampered_or_misattributed_chunk_is_detected():
    k = KeyBundle.generate()
    data = b"some data " * 1000
    cid = chunk_id(k, data)
    rec = bytearray(encrypt_chunk(k, cid, data))
    rec[40] ^= 1
    with pytest.raises(IntegrityError, match="authentication"):
        decrypt_chunk(k, cid, bytes(rec))
    other = chunk_id(k, b"other")
    with pytest.raises(IntegrityError):
        decrypt_chunk(k, other, encrypt_chunk(k, cid, data))
    with pytest.raises(IntegrityError):
        decrypt_chunk(KeyBundle.generate(), cid, encrypt_chunk(k, cid, data))


def test_lying_id_is_detected_after_decryption():
    # An attacker with the chunk key could encrypt other content under an id; the
    # recomputed keyed hash catches it.
    k = KeyBundle.generate()
    cid = chunk_id(k, b"genuine")
    rec = encrypt_chunk(k, cid, b"forged")
    with pytest.raises(IntegrityError, match="does not match"):
        decrypt_chunk(k, cid, rec)


def test_blob_associated_data():
    k = KeyBundle.generate()
    blob = encrypt_blob(k, b"manifest bytes", b"manifest:abc")
    assert decrypt_blob(k, blob, b"manifest:abc") == b"manifest bytes"
    with pytest.raises(IntegrityError):
        decrypt_blob(k, blob, b"manifest:other")
    assert b"manifest bytes" not in blob


def test_keybundle_repr_hides_keys():
    k = KeyBundle.generate()
    assert k.chunk_key.hex() not in repr(k)
    with pytest.raises(ValueError):
        KeyBundle(b"short", b"x" * 32, b"y" * 32)
