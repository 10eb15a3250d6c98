"""The agent API, /api/agent/v1/: thin views over agents.services and vaults.data."""

import base64

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from agents.authentication import IsMachine, MachineTokenAuthentication
from agents.models import AgentRelease, Job, Machine
from agents.services import commands, jobs, registration
from policies.documents import config_etag, machine_document
from vaults import data

POLL_INTERVAL_SECONDS = settings.AGENT_POLL_INTERVAL


class PerMachineThrottle(SimpleRateThrottle):
    scope = "agent"

    def get_cache_key(self, request, view):
        machine = getattr(request, "machine", None)
        return self.cache_format % {"scope": self.scope, "ident": machine.pk} if machine else None


class RegistrationThrottle(AnonRateThrottle):
    rate = "30/hour"


class AgentView(APIView):
    authentication_classes = [MachineTokenAuthentication]
    permission_classes = [IsMachine]
    throttle_classes = [PerMachineThrottle]

    @property
    def machine(self) -> Machine:
        return self.request.machine

    def source_machine(self) -> Machine:
        """This machine, or another machine of the same vault named by ?machine= (restore)."""
        name = self.request.query_params.get("machine")
        if not name or name == self.machine.name:
            return self.machine
        return get_object_or_404(
            Machine.objects.select_related("vault"),
            vault_id=self.machine.vault_id,
            name__iexact=name,
        )


def latest_release() -> str:
    version = cache.get("agent-latest-release")
    if version is None:
        from agents.wheel import agent_version

        release = (
            AgentRelease.objects.order_by("-released_at").values_list("version", flat=True).first()
        )
        version = release or agent_version()
        cache.set("agent-latest-release", version, 60)
    return version


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = [RegistrationThrottle]

    @extend_schema(
        request=inline_serializer(
            "Registration",
            {
                "registration_secret": serializers.CharField(),
                "host_name": serializers.CharField(),
                "os_name": serializers.CharField(required=False),
                "agent_version": serializers.CharField(required=False),
                "time_zone": serializers.CharField(required=False),
                "reregister": serializers.BooleanField(required=False),
            },
        ),
        responses={
            201: inline_serializer(
                "Registered",
                {
                    "machine_id": serializers.UUIDField(),
                    "token": serializers.CharField(),
                    "vault_id": serializers.UUIDField(),
                    "vault_name": serializers.CharField(),
                    "key_blob": serializers.CharField(allow_null=True),
                    "poll_interval": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request):
        body = request.data
        machine, token = registration.register_machine(
            request,
            secret=str(body.get("registration_secret", "")),
            host_name=str(body.get("host_name", "")),
            os_name=str(body.get("os_name", "")),
            agent_version=str(body.get("agent_version", "")),
            time_zone=str(body.get("time_zone", "UTC")),
            reregister=bool(body.get("reregister", False)),
        )
        return Response(
            {
                "machine_id": str(machine.pk),
                "token": token,
                "vault_id": str(machine.vault_id),
                "vault_name": machine.vault.name,
                "key_blob": base64.b64encode(bytes(machine.key_blob)).decode()
                if machine.key_blob
                else None,
                "poll_interval": POLL_INTERVAL_SECONDS,
            },
            status=status.HTTP_201_CREATED,
        )


class ConfigView(AgentView):
    """The poll: 304 when nothing changed and no command waits; else the machine document."""

    @extend_schema(responses={200: dict, 304: None})
    def get(self, request):
        machine = self.machine
        now = timezone.now()
        release = latest_release()
        etag = config_etag(machine, machine.policy, release, now)
        pending = commands.pending_commands(machine)
        if not pending and request.headers.get("If-None-Match") == etag:
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
        else:
            document = machine_document(
                machine, machine.policy, release, now, POLL_INTERVAL_SECONDS
            )
            document["commands"] = [
                {**c, "id": str(c["id"]), "created_at": c["created_at"].isoformat()}
                for c in pending
            ]
            response = Response(document)
        response["ETag"] = etag
        return response

    @extend_schema(
        request=inline_serializer(
            "MachineReport",
            {
                "agent_version": serializers.CharField(required=False),
                "os_name": serializers.CharField(required=False),
                "time_zone": serializers.CharField(required=False),
            },
        ),
        responses={204: None},
    )
    def patch(self, request):
        """The agent reports its version, OS and time zone (on start and when they change)."""
        from agents.services.machines import update_reported_facts

        update_reported_facts(request, self.machine, request.data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CommandAckView(AgentView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, command_id):
        commands.acknowledge(self.machine, command_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CommandResultView(AgentView):
    @extend_schema(
        request=inline_serializer(
            "CommandResult", {"ok": serializers.BooleanField(), "result": serializers.DictField()}
        ),
        responses={204: None},
    )
    def post(self, request, command_id):
        commands.report_result(
            self.machine,
            command_id,
            ok=bool(request.data.get("ok")),
            result=request.data.get("result") or {},
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobsView(AgentView):
    @extend_schema(
        request=inline_serializer(
            "JobOpen",
            {
                "kind": serializers.CharField(),
                "trigger": serializers.CharField(),
                "command_id": serializers.UUIDField(required=False),
                "retain_until": serializers.DateTimeField(required=False),
                "details": serializers.DictField(required=False),
            },
        ),
        responses={201: inline_serializer("JobOpened", {"id": serializers.UUIDField()})},
    )
    def post(self, request):
        body = request.data
        job = jobs.open_job(
            request,
            self.machine,
            kind=str(body.get("kind", "")),
            trigger=str(body.get("trigger", "")),
            command_id=body.get("command_id"),
            retain_until=body.get("retain_until"),
            details=body.get("details"),
        )
        return Response({"id": str(job.pk)}, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: dict})
    def get(self, request):
        rows = Job.objects.filter(machine=self.machine).values(
            "id",
            "kind",
            "trigger",
            "state",
            "phase",
            "started_at",
            "finished_at",
            "bytes_scanned",
            "bytes_uploaded",
            "files_done",
            "warning_count",
            "error",
            "recovery_point_id",
        )[:50]
        return Response({"jobs": list(rows)})


class JobProgressView(AgentView):
    @extend_schema(request=dict, responses={204: None})
    def post(self, request, job_id):
        jobs.report_progress(self.machine, job_id, request.data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobFinishView(AgentView):
    @extend_schema(request=dict, responses={200: dict})
    def post(self, request, job_id):
        body = request.data
        job = jobs.finish_job(
            request,
            self.machine,
            job_id,
            state=str(body.get("state", "")),
            warnings=body.get("warnings") or [],
            error=str(body.get("error", "")),
            point_id=body.get("point_id"),
            details=body.get("details"),
        )
        return Response({"id": str(job.pk), "state": job.state})


class ChunkLookupView(AgentView):
    @extend_schema(
        request=inline_serializer(
            "ChunkIds", {"ids": serializers.ListField(child=serializers.CharField())}
        ),
        responses={200: inline_serializer("ChunksPresent", {"present": serializers.DictField()})},
    )
    def post(self, request):
        return Response({"present": data.lookup_chunks(self.machine, request.data.get("ids"))})


class ChunkLocateView(AgentView):
    @extend_schema(
        parameters=[OpenApiParameter("machine", str)], request=dict, responses={200: dict}
    )
    def post(self, request):
        return Response(
            {"locations": data.locate_chunks(self.source_machine(), request.data.get("ids"))}
        )


class UploadsView(AgentView):
    @extend_schema(
        request=inline_serializer(
            "UploadRequest", {"blobs": serializers.ListField(child=serializers.DictField())}
        ),
        responses={200: inline_serializer("UploadUrls", {"urls": serializers.DictField()})},
    )
    def post(self, request):
        blobs = request.data.get("blobs")
        if not isinstance(blobs, list) or not blobs or len(blobs) > 100:
            return Response({"blobs": ["Send 1 to 100 blobs as {kind, name, size}."]}, status=400)
        urls = data.lease_uploads(self.machine, blobs)
        return Response({"urls": urls})


class PacksView(AgentView):
    @extend_schema(request=dict, responses={201: dict})
    def post(self, request):
        body = request.data
        chunks = body.get("chunks")
        if not isinstance(chunks, list):
            return Response(
                {"chunks": ["List the pack's chunks as {id, offset, length}."]}, status=400
            )
        pack = data.register_pack(self.machine, str(body.get("name", "")), body.get("size"), chunks)
        return Response({"name": pack.name, "size": pack.size}, status=status.HTTP_201_CREATED)


class DownloadsView(AgentView):
    @extend_schema(
        parameters=[OpenApiParameter("machine", str)], request=dict, responses={200: dict}
    )
    def post(self, request):
        blobs = request.data.get("blobs")
        if not isinstance(blobs, list) or not blobs:
            return Response({"blobs": ["Send blobs as {kind, name}."]}, status=400)
        return Response({"urls": data.download_urls(self.source_machine(), blobs)})


def point_payload(point) -> dict:
    return {
        "id": str(point.pk),
        "created_at": point.taken_at.timestamp(),
        "taken_at": point.taken_at.isoformat(),
        "kind": point.content,
        "point_type": point.kind,
        "manifest": point.manifest,
        "packs": [p.name for p in point.packs.all()],
        "files": point.files,
        "dirs": point.dirs,
        "bytes_scanned": point.bytes_scanned,
        "bytes_new": point.bytes_new,
        "bytes_stored": point.bytes_stored,
        "warnings": point.warnings,
        "expires_at": point.expires_at.isoformat() if point.expires_at else None,
        "retain_until": point.retain_until.isoformat() if point.retain_until else None,
    }


class RecoveryPointsView(AgentView):
    @extend_schema(parameters=[OpenApiParameter("machine", str)], responses={200: dict})
    def get(self, request):
        points = (
            self.source_machine().recovery_points.prefetch_related("packs").order_by("taken_at")
        )
        return Response({"points": [point_payload(p) for p in points]})

    @extend_schema(request=dict, responses={201: dict})
    def post(self, request):
        body = request.data
        job = (
            Job.objects.filter(pk=body.get("job_id"), machine=self.machine).first()
            if body.get("job_id")
            else None
        )
        point = data.commit_point(self.machine, job, body)
        return Response(point_payload(point), status=status.HTTP_201_CREATED)


class RecoveryPointView(AgentView):
    @extend_schema(parameters=[OpenApiParameter("machine", str)], responses={200: dict})
    def get(self, request, point_id):
        point = get_object_or_404(
            self.source_machine().recovery_points.prefetch_related("packs"), pk=point_id
        )
        return Response(point_payload(point))


class KeysView(AgentView):
    """The machine's wrapped data keys: stored here, readable only with the passphrase."""

    @extend_schema(parameters=[OpenApiParameter("machine", str)], responses={200: dict})
    def get(self, request):
        machine = self.source_machine()
        blob = bytes(machine.key_blob)
        return Response(
            {"machine": machine.name, "key_blob": base64.b64encode(blob).decode() if blob else None}
        )

    @extend_schema(request=dict, responses={204: None})
    def put(self, request):
        """Replacing existing keys (a passphrase change) needs the vault's security PIN."""
        try:
            blob = base64.b64decode(str(request.data.get("key_blob", "")), validate=True)
        except ValueError:
            return Response({"key_blob": ["Send the key blob as base64."]}, status=400)
        registration.store_key_blob(
            request, self.machine, blob, pin=str(request.data.get("pin", ""))
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ThrottlingView(AgentView):
    """The agent's Change Properties → Throttling (``backup-agent set-throttling``)."""

    @extend_schema(request=dict, responses={200: dict})
    def put(self, request):
        from policies.documents import throttling_doc
        from policies.throttling import set_throttling

        body = request.data if isinstance(request.data, dict) else {}
        fields = ("work_days", "work_start", "work_end", "work_hours_kbps", "off_hours_kbps")
        machine = set_throttling(
            request,
            self.machine,
            enabled=bool(body.get("enabled")),
            by_agent=True,
            **{name: body.get(name) for name in fields},
        )
        return Response(throttling_doc(machine))


class MachinesView(AgentView):
    @extend_schema(responses={200: dict})
    def get(self, request):
        names = Machine.objects.filter(vault_id=self.machine.vault_id).values(
            "name", "os_name", "last_seen_at"
        )
        return Response({"machines": list(names)})
