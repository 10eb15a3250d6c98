"""The vault blob store: the same behaviour tests against both backends.

Each test runs against Azurite (``azure``, marked ``services``) and against the local
folder backend served by the portal's ``/blob/`` view under a live server (``local``).
The HTTP calls are the agent's one code path: plain httpx ``PUT``/``GET``/``HEAD`` on the
URLs the store hands out.
"""

import contextlib
import os
import socket
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from django.test import AsyncClient
from pytest_django.live_server_helper import LiveServer

from tests.conftest import AZURITE_ACCOUNT
from vaults.storage import StorageError, get_blob_store
from vaults.storage.azure import AzureBlobStore
from vaults.storage.local import LocalBlobStore

MiB = 1024 * 1024
PUT_HEADERS = {
    "x-ms-blob-type": "BlockBlob",
    "x-ms-version": "2025-11-05",
    "If-None-Match": "*",
}
EXPIRED = timedelta(seconds=-30)


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def blob_server():
    """The portal under pytest-django's live server, without a database.

    pytest-django's ``live_server`` fixture would make every test transactional; the blob
    endpoint must not touch the database at all (pytest-django's blocker would fail the
    request if it did), so this runs the same server class on its own.
    """
    server = LiveServer("127.0.0.1:0")
    yield server
    server.stop()


@pytest.fixture
def local_store(settings, tmp_path, blob_server):
    """The configured store in the embedded default, its URLs pointing at the live server."""
    settings.AZURE_STORAGE_CONNECTION_STRING = None
    settings.BLOB_ROOT = tmp_path / "blobs"
    settings.PORTAL_URL = blob_server.url
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    store = get_blob_store()
    assert isinstance(store, LocalBlobStore)
    return store


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.services)])
def store(request, settings):
    if request.param == "azure":
        connection_string = request.getfixturevalue("azurite_connection_string")
        return AzureBlobStore(connection_string, api_version=settings.AZURE_STORAGE_API_VERSION)
    return request.getfixturevalue("local_store")


@pytest.fixture
def container(store):
    name = f"vault-{uuid.uuid4().hex[:16]}"
    store.create_container(name)
    yield name
    store.delete_container(name)


def put(http, url, data, **headers):
    """The agent's upload; a header given as None is left out."""
    merged = {**PUT_HEADERS, **headers}
    return http.put(url, content=data, headers={k: v for k, v in merged.items() if v is not None})


def with_query(url, **changes):
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def a_year_later(expiry: str) -> str:
    """``se`` pushed a year on: unix seconds (local) or ISO 8601 (Azure)."""
    if expiry.isdigit():
        return str(int(expiry) + 366 * 86400)
    return str(int(expiry[:4]) + 1) + expiry[4:]


def test_containers_are_created_and_deleted_idempotently(store, http):
    name = f"vault-{uuid.uuid4().hex[:16]}"
    assert not store.container_exists(name)
    store.create_container(name)
    store.create_container(name)
    assert store.container_exists(name)
    assert put(http, store.upload_url(name, "packs/aa"), b"data").status_code == 201
    store.delete_container(name)
    store.delete_container(name)
    assert not store.container_exists(name)
    assert store.blob_size(name, "packs/aa") is None
    assert list(store.list_blobs(name)) == []
    assert store.container_bytes(name) == 0
    store.delete_blob(name, "packs/aa")  # a missing container is no error either


def test_large_upload_and_download_are_byte_exact(store, container, http):
    body = os.urandom(24 * MiB)
    response = put(http, store.upload_url(container, "packs/big"), body)
    assert response.status_code == 201, response.text
    assert store.blob_size(container, "packs/big") == len(body)

    url = store.download_url(container, "packs/big")
    response = http.get(url)
    assert response.status_code == 200
    assert response.content == body

    head = http.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(body)

    # a chunk out of the middle of a pack, across 1 MiB boundaries
    start, end = 3 * MiB - 17, 5 * MiB + 100
    response = http.get(url, headers={"Range": f"bytes={start}-{end}"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(body)}"
    assert response.content == body[start : end + 1]


def test_range_requests(store, container, http):
    body = bytes(range(256)) * 4
    assert put(http, store.upload_url(container, "packs/r"), body).status_code == 201
    url = store.download_url(container, "packs/r")

    response = http.get(url, headers={"Range": "bytes=10-19"})
    assert (response.status_code, response.content) == (206, body[10:20])
    assert response.headers["content-length"] == "10"

    response = http.get(url, headers={"Range": "bytes=1000-"})
    assert (response.status_code, response.content) == (206, body[1000:])
    assert response.headers["content-range"] == "bytes 1000-1023/1024"

    response = http.get(url, headers={"Range": "bytes=1020-5000"})  # clipped to the end
    assert (response.status_code, response.content) == (206, body[1020:])

    response = http.get(url, headers={"Range": "bytes=2000-2010"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */1024"


def test_upload_url_cannot_read_or_delete(store, container, http):
    url = store.upload_url(container, "packs/w")
    assert put(http, url, b"secret").status_code == 201
    assert http.get(url).status_code == 403
    assert http.head(url).status_code == 403
    assert http.delete(url).status_code == 403
    assert store.blob_size(container, "packs/w") == 6


def test_download_url_cannot_write_or_delete(store, container, http):
    assert put(http, store.upload_url(container, "packs/r"), b"original").status_code == 201
    url = store.download_url(container, "packs/r")
    response = put(http, url, b"evil", **{"If-None-Match": None})
    assert response.status_code == 403
    assert put(http, store.download_url(container, "packs/new"), b"evil").status_code == 403
    assert http.delete(url).status_code == 403
    assert http.get(url).content == b"original"
    assert store.blob_size(container, "packs/new") is None


def test_expired_urls_are_refused(store, container, http):
    assert put(http, store.upload_url(container, "packs/e", ttl=EXPIRED), b"x").status_code == 403
    assert store.blob_size(container, "packs/e") is None
    assert put(http, store.upload_url(container, "packs/e"), b"x").status_code == 201
    assert http.get(store.download_url(container, "packs/e", ttl=EXPIRED)).status_code == 403


def test_if_none_match_keeps_blobs_write_once(store, container, http):
    url = store.upload_url(container, "packs/once")
    assert put(http, url, b"first").status_code == 201
    response = put(http, url, b"second")
    assert response.status_code == 409
    assert response.headers.get("x-ms-error-code") == "BlobAlreadyExists"
    assert http.get(store.download_url(container, "packs/once")).content == b"first"
    # without the condition a write URL overwrites, as an Azure create+write SAS does
    assert put(http, url, b"third", **{"If-None-Match": None}).status_code == 201
    assert http.get(store.download_url(container, "packs/once")).content == b"third"


def test_put_needs_block_blob_type_and_an_existing_container(store, container, http):
    url = store.upload_url(container, "packs/t")
    assert http.put(url, content=b"x", headers={"x-ms-version": "2025-11-05"}).status_code == 400
    assert store.blob_size(container, "packs/t") is None
    missing = f"vault-{uuid.uuid4().hex[:16]}"
    assert put(http, store.upload_url(missing, "packs/t"), b"x").status_code == 404
    assert not store.container_exists(missing)


def test_missing_blob_answers_404(store, container, http):
    response = http.get(store.download_url(container, "packs/none"))
    assert response.status_code == 404
    assert response.headers.get("x-ms-error-code") == "BlobNotFound"


def test_tampered_urls_are_refused(store, container, http):
    assert put(http, store.upload_url(container, "packs/a"), b"a").status_code == 201
    assert put(http, store.upload_url(container, "packs/b"), b"b").status_code == 201
    url = store.download_url(container, "packs/a")
    query = dict(parse_qsl(urlsplit(url).query))
    signature = query["sig"]
    forged = ("0" if signature[0] != "0" else "1") + signature[1:]  # in hex and base64 alike
    assert http.get(with_query(url, sig=forged)).status_code == 403
    assert http.get(with_query(url, se=a_year_later(query["se"]))).status_code == 403
    # a read URL cannot be turned into a write URL, nor moved to another blob
    assert (
        put(http, with_query(url, sp="cw"), b"evil", **{"If-None-Match": None}).status_code == 403
    )
    assert http.get(url.replace("packs/a", "packs/b")).status_code == 403
    assert http.get(url.split("?")[0]).status_code in (403, 404)  # no signature at all
    assert http.get(url).content == b"a"


def test_sizes_listing_and_deletion(store, container, http):
    blobs = {
        "packs/00ff": b"1" * 10,
        "packs/3f2a": b"2" * 300,
        "manifests/machine-1/point-2": b"3" * 7,
        "manifests/machine-1/point-10": b"4" * 5,
        "manifests/machine-2/point-1": b"5",
        "keys": b"6" * 2,
    }
    for name, data in blobs.items():
        assert put(http, store.upload_url(container, name), data).status_code == 201

    listed = list(store.list_blobs(container))
    assert listed == sorted((name, len(data)) for name, data in blobs.items())
    assert dict(store.list_blobs(container, "packs/")) == {"packs/00ff": 10, "packs/3f2a": 300}
    assert list(store.list_blobs(container, "packs/3")) == [("packs/3f2a", 300)]
    assert [n for n, _ in store.list_blobs(container, "manifests/machine-1/")] == [
        "manifests/machine-1/point-10",
        "manifests/machine-1/point-2",
    ]
    assert list(store.list_blobs(container, "nothing/")) == []
    assert store.container_bytes(container) == sum(len(d) for d in blobs.values())
    assert store.blob_size(container, "packs/3f2a") == 300
    assert store.blob_size(container, "packs/none") is None
    assert store.blob_size(container, "manifests") is None  # a "folder" is no blob

    store.delete_blob(container, "packs/3f2a")
    store.delete_blob(container, "packs/3f2a")
    assert store.blob_size(container, "packs/3f2a") is None
    assert http.get(store.download_url(container, "packs/3f2a")).status_code == 404
    assert store.container_bytes(container) == sum(len(d) for d in blobs.values()) - 300


BAD_CONTAINERS = ["ab", "a" * 64, "Vault", "vault_1", "-vault", "vault-", "va--ult", "vault/x", ""]
BAD_BLOBS = [
    "",
    "/packs/a",
    "packs/../x",
    "..",
    "packs//a",
    "packs/a/",
    "./a",
    "packs/a b",
    "packs/ä",
    "packs/a?b",
    "packs\\a",
    "a" * 513,
]


@pytest.mark.parametrize("name", BAD_CONTAINERS)
def test_invalid_container_names_raise_value_error(store, name):
    for call in (
        store.create_container,
        store.delete_container,
        store.container_exists,
        store.container_bytes,
        lambda c: list(store.list_blobs(c)),
        lambda c: store.upload_url(c, "packs/a"),
        lambda c: store.download_url(c, "packs/a"),
        lambda c: store.blob_size(c, "packs/a"),
        lambda c: store.delete_blob(c, "packs/a"),
    ):
        with pytest.raises(ValueError):
            call(name)


@pytest.mark.parametrize("name", BAD_BLOBS)
def test_invalid_blob_names_raise_value_error(store, name):
    for call in (store.upload_url, store.download_url, store.blob_size, store.delete_blob):
        with pytest.raises(ValueError):
            call("vault-names", name)


def test_valid_names_are_accepted(store):
    longest = "a/" * 255 + "bc"
    assert len(longest) == 512
    for blob in ["packs/3f2a", "manifests/m-1/p_2.json", "a", ".hidden", "a..b", longest]:
        assert store.upload_url("abc", blob)
    store.upload_url("a" * 63, "x")
    store.upload_url("vault-1-2", "x")
    with pytest.raises(ValueError):
        list(store.list_blobs("vault-names", "../"))


# -- the local backend's own details -------------------------------------------------------


def test_local_url_shape_and_refusals(local_store, http):
    store = local_store
    store.create_container("vault-local")
    url = store.upload_url("vault-local", "packs/x")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}".endswith("/blob/vault-local/packs/x")
    query = dict(parse_qsl(parts.query))
    assert query["sp"] == "cw" and query["se"].isdigit() and len(query["sig"]) == 64

    response = put(http, store.upload_url("vault-local", "packs/x", ttl=EXPIRED), b"x")
    assert response.status_code == 403
    assert "AuthenticationFailed: signature expired" in response.text
    response = http.get(url)
    assert response.status_code == 403
    assert response.headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"
    assert http.post(url, content=b"x").status_code == 405
    # Azure would make an append blob; the local store keeps block blobs only
    assert put(http, url, b"x", **{"x-ms-blob-type": "AppendBlob"}).status_code == 400
    status, _ = raw_put(url, b"PUT-without-length", length=None)
    assert status == 411
    assert put(http, url, b"abc").status_code == 201
    # a URL signed with another key is refused
    other = LocalBlobStore(store.root, secret_key="another secret")
    response = http.get(other.download_url("vault-local", "packs/x"))
    assert response.status_code == 403
    assert "AuthenticationFailed: signature does not match" in response.text


def test_local_clock_decides_expiry(local_store, http, monkeypatch):
    import vaults.storage.local as local

    local_store.create_container("vault-clock")
    url = local_store.upload_url("vault-clock", "packs/c", ttl=timedelta(minutes=5))
    real_now = local._now
    monkeypatch.setattr(local, "_now", lambda: real_now() + 301)
    response = put(http, url, b"late")
    assert response.status_code == 403
    assert "signature expired" in response.text
    monkeypatch.setattr(local, "_now", real_now)
    assert put(http, url, b"on time").status_code == 201


def test_local_partial_uploads_are_never_visible(local_store, http):
    store = local_store
    store.create_container("vault-tmp")
    folder = store.root / "vault-tmp" / "packs"
    folder.mkdir()
    (folder / ".x~upload-1234").write_bytes(b"partial")
    assert list(store.list_blobs("vault-tmp")) == []
    assert store.container_bytes("vault-tmp") == 0
    # a body shorter than its Content-Length (a dropped connection) stores nothing
    status, _ = raw_put(store.upload_url("vault-tmp", "packs/short"), b"only this", length=100)
    assert status == 400
    assert store.blob_size("vault-tmp", "packs/short") is None
    assert [p.name for p in folder.iterdir()] == [".x~upload-1234"]


def test_local_endpoint_is_off_when_azure_is_configured(local_store, http, settings):
    local_store.create_container("vault-off")
    url = local_store.upload_url("vault-off", "packs/x")
    settings.AZURE_STORAGE_CONNECTION_STRING = AZURITE_ACCOUNT.format(port=1)
    assert put(http, url, b"x").status_code == 404


async def test_local_upload_through_asgi_has_no_body_cap(settings, tmp_path):
    """daphne serves the portal: the ASGI handler takes the same large PUT."""
    settings.AZURE_STORAGE_CONNECTION_STRING = None
    settings.BLOB_ROOT = tmp_path / "blobs"
    settings.PORTAL_URL = "http://testserver"
    store = get_blob_store()
    store.create_container("vault-asgi")
    body = os.urandom(3 * MiB)
    client = AsyncClient()

    def path(url):
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"

    response = await client.generic(
        "PUT",
        path(store.upload_url("vault-asgi", "packs/asgi")),
        data=body,
        content_type="application/octet-stream",
        headers=PUT_HEADERS,
    )
    assert response.status_code == 201
    response = await client.get(
        path(store.download_url("vault-asgi", "packs/asgi")), headers={"Range": "bytes=5-2000000"}
    )
    assert response.status_code == 206
    assert response.is_async  # streamed, not loaded whole into memory under daphne
    assert b"".join([part async for part in response]) == body[5:2000001]
    response = await client.get(path(store.download_url("vault-asgi", "packs/asgi")))
    assert response.status_code == 200 and response.is_async
    assert b"".join([part async for part in response]) == body


# -- choosing and failing --------------------------------------------------------------------


def test_get_blob_store_follows_settings(settings, tmp_path):
    settings.AZURE_STORAGE_CONNECTION_STRING = None
    settings.BLOB_ROOT = tmp_path / "one"
    first = get_blob_store()
    assert isinstance(first, LocalBlobStore) and first.root == (tmp_path / "one").resolve()
    assert get_blob_store() is first
    settings.BLOB_ROOT = tmp_path / "two"
    assert get_blob_store() is not first
    settings.AZURE_STORAGE_CONNECTION_STRING = AZURITE_ACCOUNT.format(port=1)
    azure = get_blob_store()
    assert isinstance(azure, AzureBlobStore)
    assert get_blob_store() is azure
    assert "/devstoreaccount1/vault-x/packs/a?" in azure.upload_url("vault-x", "packs/a")


def test_backend_failures_raise_storage_error(tmp_path):
    with unused_port() as port:
        azure = AzureBlobStore(AZURITE_ACCOUNT.format(port=port), retry_total=0)
        with pytest.raises(StorageError, match="Azure storage: creating container 'vault-x'"):
            azure.create_container("vault-x")
        with pytest.raises(StorageError, match="cannot reach"):
            list(azure.list_blobs("vault-x"))
    with pytest.raises(StorageError, match="AccountKey"):
        AzureBlobStore("BlobEndpoint=http://127.0.0.1:1/x;SharedAccessSignature=sv=1&sig=2")
    (tmp_path / "file").write_text("not a folder")
    local = LocalBlobStore(tmp_path / "file")
    with pytest.raises(StorageError, match="local storage: cannot create container"):
        local.create_container("vault-x")


def raw_put(url, body: bytes, length: int | None):
    """A PUT over a bare socket that sends ``body`` and half-closes: a dropped upload."""
    parts = urlsplit(url)
    head = [f"PUT {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{k}: {v}" for k, v in PUT_HEADERS.items()]
    if length is not None:
        head.append(f"Content-Length: {length}")
    head.append("Connection: close")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


@contextlib.contextmanager
def unused_port():
    """A loopback port bound but not listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
