"""Prefixed bearer secrets, stored hashed: ``<prefix>_<key id>_<secret>``.

The key id finds the row with one indexed lookup; the secret is compared in constant time.
Used for personal access tokens, machine tokens and vault registration secrets.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class IssuedSecret:
    token: str
    key_id: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(prefix: str) -> IssuedSecret:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return IssuedSecret(f"{prefix}_{key_id}_{secret}", key_id, hash_secret(secret))


def parse(prefix: str, token: str) -> tuple[str, str] | None:
    """Split a presented token into (key id, secret), or None when it is not ours."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
