"""Monitoring pages: a vault's Backup alerts (with its webhooks) and the Backup center."""

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from agents.models import Job, Machine
from policies.models import BackupPolicy
from portal.access import Action
from portal.resources import is_uuid
from portal.views.base import PortalView, deny_unless
from portal.views.resources import HOME, crumb
from vaults import alerts as alert_service
from vaults import charts, webhooks
from vaults.models import Alert, AlertKind, StorageSample, Vault, VaultWebhook
from vaults.views.vaults import VaultBlade

STATE_ORDER = (
    ("completed", gettext_lazy("Completed")),
    ("completed_with_warnings", gettext_lazy("Completed with warnings")),
    ("failed", gettext_lazy("Failed")),
    ("in_progress", gettext_lazy("In progress")),
)
JOB_DAYS = 14
STORAGE_DAYS = 30


def _resolve_posted_alert(request, alerts):
    """The "Resolve" button: OPERATE on the alert, audited by the service."""
    alert = get_object_or_404(
        alerts.select_related("tenant", "vault", "machine"), pk=request.POST.get("alert")
    )
    try:
        alert_service.resolve_by_user(request, alert)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Alert resolved: %(alert)s.") % {"alert": alert.name})


class VaultAlertsView(VaultBlade):
    menu_entry = "alerts"
    menu_title = gettext_lazy("Backup alerts")
    template_name = "vaults/alerts.html"
    page_size = 50

    def alerts(self):
        return self.scoped(Alert.objects.filter(vault=self.resource))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        tab = "webhooks" if params.get("tab") == "webhooks" else "alerts"
        context["tab"] = tab
        context["counts"] = alert_service.active_counts(self.alerts())
        if tab == "webhooks":
            context["webhooks"] = self.scoped(
                VaultWebhook.objects.filter(vault=self.resource).select_related("vault")
            )
            return context
        alerts = self.alerts().select_related("machine", "resolved_by")
        filters = {
            "state": params.get("state", "active"),
            "severity": params.get("severity", ""),
            "kind": params.get("kind", ""),
        }
        single = params.get("alert", "")
        if single:
            alerts = alerts.filter(pk=single) if is_uuid(single) else alerts.none()
        else:
            if filters["state"] in Alert.State.values:
                alerts = alerts.filter(state=filters["state"])
            if filters["severity"] in Alert.Severity.values:
                alerts = alerts.filter(severity=filters["severity"])
            if filters["kind"] in AlertKind.values:
                alerts = alerts.filter(kind=filters["kind"])
        rows = list(alerts[: self.page_size])
        for alert in rows:
            alert.description = alert_service.describe(alert)
        context.update(
            alerts=rows,
            total=alerts.count() if len(rows) >= self.page_size else len(rows),
            single=single,
            filters=filters,
            states=Alert.State.choices,
            severities=Alert.Severity.choices,
            kinds=[(k, label) for k, label in AlertKind.choices if not k.startswith("quota")],
        )
        return context

    def post(self, request, *args, **kwargs):
        vault = self.resource
        action = request.POST.get("action")
        back = reverse("vault-alerts", args=[vault.pk])
        try:
            if action == "resolve":
                deny_unless(self.can(vault, Action.OPERATE))
                _resolve_posted_alert(request, self.alerts())
                target = request.POST.get("next", "")
                safe = url_has_allowed_host_and_scheme(target, allowed_hosts=None)
                return redirect(target if target.startswith("/") and safe else back)
            back += "?tab=webhooks"
            if action == "webhook-add":
                deny_unless(self.can(vault, Action.WRITE))
                webhook = webhooks.create_webhook(
                    request, vault, url=request.POST.get("url", ""), enabled=True
                )
                context = self.get_context_data()
                context.update(tab="webhooks", new_webhook=webhook)
                context["webhooks"] = self.scoped(
                    VaultWebhook.objects.filter(vault=vault).select_related("vault")
                )
                return self.render_to_response(context, status=201)
            if action in ("webhook-enable", "webhook-disable", "webhook-delete"):
                deny_unless(self.can(vault, Action.WRITE))
                webhook = get_object_or_404(
                    self.scoped(VaultWebhook.objects.filter(vault=vault).select_related("vault")),
                    pk=request.POST.get("webhook"),
                )
                if action == "webhook-delete":
                    webhooks.delete_webhook(request, webhook)
                    messages.success(request, _("Webhook deleted."))
                else:
                    webhooks.update_webhook(request, webhook, enabled=action == "webhook-enable")
                    messages.success(request, _("Webhook saved."))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect(back)


# Backup center ---------------------------------------------------------------------------


def _count_of(queryset, field="vault"):
    """A correlated COUNT(*) subquery per vault (no join fan-out in the outer query)."""
    counted = queryset.filter(**{field: OuterRef("pk")}).order_by().values(field)
    return Coalesce(
        Subquery(counted.annotate(n=Count("pk")).values("n"), output_field=IntegerField()),
        Value(0),
    )


def _days(today, count):
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def _day_label(day):
    return date_format(day, "M j")


def job_chart(vault_ids, now):
    """Jobs per local day by state for the last JOB_DAYS days, as stacked bars."""
    zone = timezone.get_current_timezone()
    today = timezone.localtime(now).date()
    days = _days(today, JOB_DAYS)
    start = timezone.make_aware(datetime.combine(days[0], time.min), zone)
    rows = (
        Job.objects.filter(vault__in=vault_ids, started_at__gte=start)
        .annotate(day=TruncDate("started_at", tzinfo=zone))
        .values("day", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_day = {day: {} for day in days}
    for row in rows:
        if row["day"] in by_day:
            by_day[row["day"]][row["state"]] = row["n"]
    series = [(key, str(label)) for key, label in STATE_ORDER]
    chart = charts.stacked_bars(
        [_day_label(day) for day in days], series, [by_day[day] for day in days], width=520
    )
    return chart


def storage_chart(vault_ids, live_total, now):
    """Stored bytes per day over STORAGE_DAYS days; today is the live figure."""
    today = now.date()
    days = _days(today, STORAGE_DAYS)
    samples = (
        StorageSample.objects.filter(vault__in=vault_ids, day__gte=days[0], day__lt=today)
        .order_by("day")
        .values_list("vault_id", "day", "bytes")
    )
    per_vault = {}
    for vault_id, day, size in samples:
        per_vault.setdefault(vault_id, {})[day] = size
    values = []
    for day in days[:-1]:
        total, known = 0, False
        for series in per_vault.values():
            # carry a vault's last sample forward over a day it was not sampled
            earlier = [d for d in series if d <= day]
            if earlier:
                total += series[max(earlier)]
                known = True
        values.append(total if known else None)
    values.append(live_total)
    return charts.area_chart([_day_label(day) for day in days], values, width=520)


class BackupCenterView(PortalView):
    """One dashboard over every vault the user can see, in a constant number of queries."""

    template_name = "vaults/backup_center.html"
    title = gettext_lazy("Backup center")
    alert_rows = 8
    vault_rows = 10

    def get_breadcrumbs(self):
        return [HOME, crumb(self.title)]

    def visible_alerts(self, action=Action.READ):
        return alert_service.visible_alerts(self.request.user, self.tenant, action)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        vaults = self.scoped(Vault.objects.all())
        vault_ids = vaults.values("pk")
        totals = vaults.aggregate(count=Count("pk"), storage=Sum("storage_bytes"))
        storage = totals["storage"] or 0

        day, week = now - timedelta(days=1), now - timedelta(days=7)
        job_totals = Job.objects.filter(vault__in=vault_ids, started_at__gte=week).aggregate(
            **{
                f"{span}_{state}": Count("pk", filter=Q(state=state, started_at__gte=since))
                for span, since in (("day", day), ("week", week))
                for state, _label in STATE_ORDER
            }
        )
        job_summary = [
            {
                "label": label,
                "states": [
                    {"state": state, "label": state_label, "n": job_totals[f"{span}_{state}"]}
                    for state, state_label in STATE_ORDER
                ],
            }
            for span, label in (("day", _("Last 24 hours")), ("week", _("Last 7 days")))
        ]

        machines = Machine.objects.filter(vault__in=vault_ids).aggregate(
            registered=Count("pk"),
            protected=Count("pk", filter=Q(policy__isnull=False)),
            offline=Count(
                "pk",
                filter=Q(last_seen_at__lt=now - timedelta(minutes=5))
                | Q(last_seen_at__isnull=True),
            ),
        )
        items = 0
        for paths, system_state, users in (
            BackupPolicy.objects.filter(vault__in=vault_ids)
            .annotate(users=Count("machines"))
            .values_list("items", "system_state", "users")
        ):
            items += users * (len(paths or []) + bool(system_state))

        visible = self.visible_alerts()
        alert_counts = alert_service.active_counts(visible)
        active = list(
            visible.filter(state=Alert.State.ACTIVE)
            .select_related("vault", "machine")
            .order_by("severity", "-raised_at")[: self.alert_rows]
        )
        operable = set(
            self.visible_alerts(Action.OPERATE)
            .filter(pk__in=[a.pk for a in active])
            .values_list("pk", flat=True)
        )
        for alert in active:
            alert.description = alert_service.describe(alert)
            alert.link = alert_service.alert_link(alert)
            alert.can_resolve = alert.pk in operable

        open_alerts = Alert.objects.filter(state=Alert.State.ACTIVE)
        vault_table = list(
            vaults.select_related("resource_group")
            .annotate(
                machine_count=_count_of(Machine.objects.all()),
                critical=_count_of(open_alerts.filter(severity="critical")),
                warning=_count_of(open_alerts.filter(severity="warning")),
                failed_day=_count_of(Job.objects.filter(state="failed", started_at__gte=day)),
            )
            .order_by("-storage_bytes", "name")[: self.vault_rows]
        )
        largest = max((v.storage_bytes for v in vault_table), default=0)
        for vault in vault_table:
            vault.storage_share = round(100 * vault.storage_bytes / largest, 1) if largest else 0
        quota = self.tenant.max_storage_bytes
        directory_used = (
            Vault.objects.filter(tenant=self.tenant).aggregate(s=Sum("storage_bytes"))["s"] or 0
        )
        context.update(
            vault_count=totals["count"],
            storage=storage,
            quota=quota,
            quota_used=directory_used,
            quota_percent=min(100, round(100 * directory_used / quota)) if quota else 0,
            machines=machines,
            items=items,
            job_summary=job_summary,
            jobs_chart=job_chart(vault_ids, now),
            storage_chart=storage_chart(vault_ids, storage, now),
            alert_counts=alert_counts,
            active_alerts=active,
            vault_table=vault_table,
            state_labels=dict(STATE_ORDER),
        )
        return context

    def post(self, request, *args, **kwargs):
        if request.POST.get("action") == "resolve":
            _resolve_posted_alert(request, self.visible_alerts())
        return redirect("backup-center")
