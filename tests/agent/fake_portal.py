"""An in-memory stand-in for the portal's agent API and blob storage, as httpx transports.

It follows the server's contract closely (agents/api/views.py, vaults/data.py,
vaults/views/blob.py) so ``HttpRepository`` and the service can be tested without
Django; faults (5xx, dropped responses, expired URLs) are injected per test.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx

PORTAL = "http://portal.test"
BLOBS = "http://blob.test"


class FakePortal:
    def __init__(self):
        self.lock = threading.Lock()
        self.blobs: dict[str, bytes] = {}
        self.chunks: dict[str, tuple[str, int, int]] = {}  # id -> (pack, offset, length)
        self.packs: dict[str, int] = {}
        self.points: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.progress: list[dict] = []
        self.commands: list[dict] = []
        self.key_blob: bytes | None = None
        self.requests: list[tuple[str, str]] = []
        self.url_ttl = 7200.0
        # faults: list of statuses to answer, in order, before behaving (per kind)
        self.blob_put_faults: list[int] = []
        self.blob_get_faults: list[int] = []
        self.api_faults: dict[str, list[int]] = {}  # path prefix -> statuses
        self.drop_commit_response = False
        self.down = False  # the portal does not answer (connection refused)
        self.facts: dict = {}  # what the agent reported with PATCH config/
        self.expire_urls_once = False
        self.document = {
            "document_version": 1,
            "machine": {"id": "m1", "name": "web-01", "vault_id": "v1"},
            "time_zone": "UTC",
            "policy": None,
            "throttling": {"enabled": False},
            "next_runs": [],
            "poll_interval": 60,
            "latest_agent_version": "0.1.0",
        }
        self.etag = '"1"'

    # ------------------------------------------------------------------ transports
    def portal_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_api)

    def blob_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_blob)

    def _json(self, status: int, body=None, headers=None) -> httpx.Response:
        return httpx.Response(status, json=body if body is not None else {}, headers=headers)

    def _url(self, name: str, perm: str) -> str:
        return f"{BLOBS}/{name}?sp={perm}&se={int(time.time() + self.url_ttl)}&sig=x"

    # ------------------------------------------------------------------ API
    def handle_api(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        assert path.startswith("/api/agent/v1/"), path
        path = path[len("/api/agent/v1/") :]
        method = request.method
        if self.down:
            raise httpx.ConnectError("connection refused (portal down)")
        with self.lock:
            self.requests.append((method, path))
            for prefix, statuses in self.api_faults.items():
                if path.startswith(prefix) and statuses:
                    return self._json(statuses.pop(0), {"detail": "injected"})
        if (method, path) == ("POST", "register/"):
            return self.register(json.loads(request.content))
        if request.headers.get("Authorization") != "Bearer bpm_token":
            return self._json(401, {"detail": "This machine's token is not valid."})
        body = json.loads(request.content) if request.content else {}
        params = parse_qs(request.url.query.decode())
        machine = params.get("machine", [None])[0]
        if machine and machine != "other":
            return self._json(404, {"detail": "Not found."})
        handler = {
            ("GET", "config/"): self.config,
            ("PATCH", "config/"): lambda b: (self.facts.update(b), self._json(204))[1],
            ("POST", "chunks/lookup/"): self.lookup,
            ("POST", "chunks/locate/"): self.locate,
            ("POST", "uploads/"): self.uploads,
            ("POST", "packs/"): self.register_pack,
            ("POST", "downloads/"): self.downloads,
            ("GET", "recovery-points/"): self.list_points,
            ("POST", "recovery-points/"): self.commit,
            ("POST", "jobs/"): self.open_job,
            ("GET", "jobs/"): lambda b: self._json(200, {"jobs": list(self.jobs.values())}),
            ("GET", "keys/"): lambda b: self.get_keys(machine),
            ("PUT", "keys/"): self.put_keys,
        }.get((method, path))
        if handler is not None:
            if path == "config/" and method == "GET":
                return self.config(request)
            return handler(body)
        m = re.fullmatch(r"jobs/([^/]+)/(progress|finish)/", path)
        if m and method == "POST":
            return self.job_update(m.group(1), m.group(2), body)
        m = re.fullmatch(r"recovery-points/([^/]+)/", path)
        if m and method == "GET":
            point = self.points.get(m.group(1))
            return self._json(200, point) if point else self._json(404, {"detail": "Not found."})
        m = re.fullmatch(r"commands/([^/]+)/(ack|result)/", path)
        if m and method == "POST":
            for c in self.commands:
                if c["id"] == m.group(1):
                    c["state"] = "acknowledged" if m.group(2) == "ack" else "done"
                    if m.group(2) == "result":
                        c["result"] = body
            return self._json(204)
        return httpx.Response(404, text="<h1>Not Found</h1>")

    def register(self, body):
        import base64

        secret = body.get("registration_secret")
        if secret == "bpr_used":
            return self._json(
                400,
                {"detail": ["This vault credentials file was already used to register a machine."]},
            )
        if secret != "bpr_good":
            return self._json(
                400, {"detail": ["This vault credentials file is not valid for this portal."]}
            )
        self.registered = body
        blob = base64.b64encode(self.key_blob).decode() if self.key_blob else None
        return self._json(
            201,
            {
                "machine_id": "6f1c0d8e-0000-4000-8000-000000000001",
                "token": "bpm_token",
                "vault_id": "v1",
                "vault_name": "vault-1",
                "key_blob": blob,
                "poll_interval": 60,
            },
        )

    def routing_transport(self) -> httpx.MockTransport:
        def route(request):
            if request.url.host == "blob.test":
                return self.handle_blob(request)
            return self.handle_api(request)

        return httpx.MockTransport(route)

    def config(self, request):
        import hashlib

        self.etag = '"' + hashlib.sha256(json.dumps(self.document).encode()).hexdigest()[:16] + '"'
        pending = [c for c in self.commands if c.get("state", "pending") == "pending"]
        if not pending and request.headers.get("If-None-Match") == self.etag:
            return httpx.Response(304, headers={"ETag": self.etag})
        doc = dict(self.document, commands=pending)
        return self._json(200, doc, {"ETag": self.etag})

    def lookup(self, body):
        ids = body.get("ids") or []
        return self._json(200, {"present": {i: self.chunks[i][0] for i in ids if i in self.chunks}})

    def locate(self, body):
        ids = body.get("ids") or []
        return self._json(
            200,
            {
                "locations": {
                    i: {"pack": p, "offset": o, "length": n}
                    for i in ids
                    if i in self.chunks
                    for p, o, n in [self.chunks[i]]
                }
            },
        )

    def uploads(self, body):
        urls = {}
        for b in body["blobs"]:
            name = ("packs/" if b["kind"] == "pack" else "manifests/m1/") + b["name"]
            urls[name] = self._url(name, "cw")
        return self._json(200, {"urls": urls})

    def register_pack(self, body):
        name, size = body["name"], body["size"]
        stored = self.blobs.get(f"packs/{name}")
        if stored is None:
            return self._json(400, {"name": [f"Pack {name} is not in storage; upload it first."]})
        if len(stored) != size:
            return self._json(400, {"size": ["size mismatch"]})
        with self.lock:
            self.packs[name] = size
            for c in body["chunks"]:
                self.chunks.setdefault(c["id"], (name, c["offset"], c["length"]))
        return self._json(201, {"name": name, "size": size})

    def downloads(self, body):
        urls = {}
        for b in body["blobs"]:
            name = ("packs/" if b["kind"] == "pack" else "manifests/m1/") + b["name"]
            urls[f"{b['kind']}:{b['name']}"] = self._url(name, "r")
        return self._json(200, {"urls": urls})

    def list_points(self, body):
        return self._json(
            200, {"points": sorted(self.points.values(), key=lambda p: p["created_at"])}
        )

    def commit(self, body):
        if f"manifests/m1/{body['manifest']}" not in self.blobs:
            return self._json(400, {"manifest": ["The manifest is not in storage."]})
        unknown = [p for p in body["packs"] if p not in self.packs]
        if unknown:
            return self._json(400, {"packs": [f"Pack {unknown[0]} is not registered."]})
        pid = str(uuid.uuid4())
        point = {
            **{k: body[k] for k in ("manifest", "packs", "files", "dirs", "bytes_scanned")},
            "id": pid,
            "created_at": body["created_at"],
            "taken_at": "2026-01-01T00:00:00+00:00",
            "kind": body.get("kind", "files"),
            "point_type": "adhoc",
            "expires_at": None,
            "retain_until": None,
            "bytes_new": body.get("bytes_new", 0),
            "bytes_stored": body.get("bytes_stored", 0),
            "warnings": body.get("warnings", 0),
            "job_id": body.get("job_id"),
        }
        self.points[pid] = point
        if self.drop_commit_response:
            self.drop_commit_response = False
            raise httpx.ReadError("connection reset by peer")
        return self._json(201, point)

    def open_job(self, body):
        jid = str(uuid.uuid4())
        self.jobs[jid] = {"id": jid, "state": "in_progress", **body}
        return self._json(201, {"id": jid})

    def job_update(self, jid, what, body):
        job = self.jobs.get(jid)
        if job is None:
            return self._json(400, {"job": ["No such job for this machine."]})
        if what == "progress":
            self.progress.append({"job": jid, "t": time.monotonic(), **body})
        else:
            details = {**job.get("details", {}), **(body.get("details") or {})}
            job.update(body)
            job["details"] = details
            job["finished"] = True
        return self._json(204 if what == "progress" else 200, {} if what == "progress" else job)

    def get_keys(self, machine):
        import base64

        blob = base64.b64encode(self.key_blob).decode() if self.key_blob else None
        return self._json(200, {"machine": machine or "web-01", "key_blob": blob})

    def put_keys(self, body):
        import base64

        self.key_blob = base64.b64decode(body["key_blob"])
        return self._json(204)

    # ------------------------------------------------------------------ blobs
    def handle_blob(self, request: httpx.Request) -> httpx.Response:
        parts = urlsplit(str(request.url))
        name = parts.path.lstrip("/")
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append((request.method, "blob:" + name))
        if int(query["se"][0]) < time.time() or self.expire_urls_once:
            self.expire_urls_once = False
            return httpx.Response(403, headers={"x-ms-error-code": "AuthenticationFailed"})
        if request.method == "PUT":
            with self.lock:
                if self.blob_put_faults:
                    return httpx.Response(self.blob_put_faults.pop(0))
            assert query["sp"] == ["cw"]
            assert request.headers["x-ms-blob-type"] == "BlockBlob"
            assert request.headers["If-None-Match"] == "*"
            body = request.read()
            assert int(request.headers["Content-Length"]) == len(body)
            with self.lock:
                if name in self.blobs:
                    return httpx.Response(409, headers={"x-ms-error-code": "BlobAlreadyExists"})
                self.blobs[name] = body
            return httpx.Response(201)
        if request.method == "GET":
            with self.lock:
                if self.blob_get_faults:
                    return httpx.Response(self.blob_get_faults.pop(0))
            assert query["sp"] == ["r"]
            data = self.blobs.get(name)
            if data is None:
                return httpx.Response(404, headers={"x-ms-error-code": "BlobNotFound"})
            rng = request.headers.get("Range")
            if rng:
                a, b = rng.split("=")[1].split("-")
                start, end = int(a), int(b) if b else len(data) - 1
                return httpx.Response(206, content=data[start : end + 1])
            return httpx.Response(200, content=data)
        return httpx.Response(405)
