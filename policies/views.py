"""Backup policies of a vault (list, Schedule Backup wizard, details) and machine throttling."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from agents.models import Machine
from policies import services
from policies.documents import effective_time_zone, upcoming_runs
from policies.forms import (
    DAY_OF_MONTH_CHOICES,
    TAB_LABELS,
    WEEK_OF_MONTH_CHOICES,
    WEEKDAY_CHOICES,
    PolicyWizardForm,
    ThrottlingForm,
    error_key,
    tab_of,
)
from policies.models import BackupPolicy
from policies.throttling import set_throttling
from portal.access import Action
from portal.views.base import ResourceBladeView, deny_unless
from portal.views.resources import HOME, crumb
from vaults.models import Vault
from vaults.views.vaults import VaultBlade

WIZARD_TABS = ("items", "schedule", "retention", "initial", "confirm")


def _describe(policy_like) -> dict:
    try:
        return services.describe_policy(
            policy_like["schedule"], policy_like["retention"], policy_like.get("time_zone", "")
        )
    except Exception:  # a stored document the engines no longer accept: show it raw
        return {"schedule": str(policy_like["schedule"]), "retention": []}


def _doc(policy) -> dict:
    return {
        "schedule": policy.schedule,
        "retention": policy.retention,
        "time_zone": policy.time_zone,
    }


class PolicyListView(VaultBlade):
    """Manage → Backup policies: every policy of the vault and how many machines use it."""

    menu_entry = "policies"
    menu_title = gettext_lazy("Backup policies")
    template_name = "policies/policy_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        policies = (
            self.scoped(BackupPolicy.objects.filter(vault=self.resource))
            .annotate(machine_count=Count("machines"))
            .order_by("name")  # Meta.ordering does not apply to a GROUP BY query
        )
        context["rows"] = [(policy, _describe(_doc(policy))) for policy in policies]
        return context


class PolicyBlade(VaultBlade):
    """A page about one policy (the URL's pk) shown inside its vault.

    The policy and its vault both come through the scoping: another tenant's policy is a 404.
    With ``pk_is_policy = False`` the pk names the vault and there is no policy (create).
    """

    pk_is_policy = True
    policy = None

    def get_resource(self):
        if not self.pk_is_policy:
            return super().get_resource()
        self.policy = get_object_or_404(
            self.scoped(BackupPolicy.objects.all()), pk=self.kwargs["pk"]
        )
        vault = get_object_or_404(
            self.scoped(Vault.objects.select_related(*self.select_related)),
            pk=self.policy.vault_id,
        )
        self.policy.vault = vault
        return vault

    def policies_crumbs(self):
        vault = self.resource
        return [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(vault.name, reverse("vault-detail", args=[vault.pk])),
            crumb(_("Backup policies"), reverse("vault-policies", args=[vault.pk])),
        ]

    def policy_url(self):
        return reverse("policy-detail", args=[self.policy.pk])


class PolicyWizardView(PolicyBlade):
    """The reference's Schedule Backup wizard: items, schedule, retention, initial backup,
    confirmation. Creates a policy, or modifies one when the URL names it."""

    menu_entry = "policies"
    template_name = "policies/wizard.html"

    @property
    def title(self):
        if self.policy:
            return _("Modify backup policy %(name)s") % {"name": self.policy.name}
        return _("Create backup policy")

    def get_breadcrumbs(self):
        crumbs = self.policies_crumbs()
        if self.policy:
            crumbs.append(crumb(self.policy.name, self.policy_url()))
            crumbs.append(crumb(_("Modify")))
        else:
            crumbs.append(crumb(_("Create policy")))
        return crumbs

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", getattr(self, "form", None))
        context = super().get_context_data(**kwargs)
        form = context["form"]
        errors = context.get("errors", {})
        context.update(
            policy=self.policy,
            step=context.get("step", "items"),
            tabs=list(TAB_LABELS.items()),
            errors=context_errors(errors),
            error_list=[
                (tab_of(error_key(key)), TAB_LABELS[tab_of(error_key(key))], message)
                for key, messages_ in errors.items()
                for message in messages_
            ],
            error_tabs={tab_of(error_key(key)) for key in errors},
            time_slots=form.time_slots(),
            exclusion_rows=form.exclusion_rows(),
            security_minimums=services.security_minimums(self.resource),
            immutable=services.immutable(self.resource),
            time_zones=_time_zone_names(),
            retention_blocks=_retention_blocks(form, context_errors(errors)),
            week_choices=WEEK_OF_MONTH_CHOICES,
            weekday_choices=WEEKDAY_CHOICES,
            day_choices=DAY_OF_MONTH_CHOICES,
            in_use=self.policy.machines.count() if self.policy else 0,
        )
        return context

    def get(self, request, *args, **kwargs):
        deny_unless(self.can(self.resource, Action.WRITE))
        today = timezone.localdate()
        if self.policy:
            initial = PolicyWizardForm.initial_from(self.policy, today)
        else:
            initial = PolicyWizardForm.defaults(today)
        self.form = PolicyWizardForm(initial=initial)
        return super().get(request, *args, **kwargs)

    def render(self, form, step="items", status=200, **extra):
        context = self.get_context_data(form=form, step=step, **extra)
        return self.render_to_response(context, status=status)

    def post(self, request, *args, **kwargs):
        deny_unless(self.can(self.resource, Action.WRITE))
        form = PolicyWizardForm(request.POST)
        if not form.is_valid():
            return self.render(form, "confirm", 400, errors=form.error_messages())
        fields = form.policy_fields()
        try:
            services.clean_policy(self.resource, fields, instance=self.policy)
        except ValidationError as exc:
            return self.render(form, "confirm", 400, errors=exc.message_dict)
        if request.POST.get("step") != "create":
            return self.render(form, "confirm", summary=self.summary(fields))
        try:
            if self.policy:
                policy = services.update_policy(request, self.policy, **fields)
                messages.success(
                    request, _("Backup policy %(name)s saved.") % {"name": policy.name}
                )
            else:
                policy = services.create_policy(request, self.resource, **fields)
                messages.success(
                    request, _("Backup policy %(name)s created.") % {"name": policy.name}
                )
        except ValidationError as exc:
            return self.render(form, "confirm", 400, errors=exc.message_dict)
        return redirect("policy-detail", policy.pk)

    def summary(self, fields) -> dict:
        return summarize(fields)


class PolicyCreateView(PolicyWizardView):
    pk_is_policy = False


class PolicyModifyView(PolicyWizardView):
    pk_is_policy = True


class ErrorMap(dict):
    """Errors by field for the template: a field without errors is an empty list, so a field
    named like a dict method ("items") never resolves to the method."""

    def __missing__(self, key):
        return []


def context_errors(errors: dict) -> dict:
    return ErrorMap({error_key(key): value for key, value in errors.items()})


def _retention_blocks(form, errors) -> list[dict]:
    """Monthly and yearly retention: the same choices, drawn by one loop in the template."""
    blocks = []
    for name, title, length_name, length_label, length_aria in (
        (
            "monthly",
            _("Retention policy for monthly backup point"),
            "monthly_months",
            _("months (1 to 1,188)"),
            _("Months to keep monthly backups"),
        ),
        (
            "yearly",
            _("Retention policy for yearly backup point"),
            "yearly_years",
            _("years (1 to 99)"),
            _("Years to keep yearly backups"),
        ),
    ):
        blocks.append(
            {
                "name": name,
                "title": title,
                "enabled": form[f"{name}_enabled"].value(),
                "by": form[f"{name}_by"].value(),
                "weeks_name": f"{name}_weeks",
                "weeks": form[f"{name}_weeks"].value(),
                "weekdays_name": f"{name}_weekdays",
                "weekdays": form[f"{name}_weekdays"].value(),
                "days_name": f"{name}_days",
                "days": form[f"{name}_days"].value(),
                "length_name": length_name,
                "length": form[length_name].value(),
                "length_label": length_label,
                "length_aria": length_aria,
                "errors": errors.get(f"retention_{name}", []),
            }
        )
    return blocks


def summarize(fields: dict) -> dict:
    """What the confirmation and the details show: plain words and the next ten runs."""
    if fields["time_zone"]:
        zone, from_policy = fields["time_zone"], True
    else:
        zone, from_policy = timezone.get_current_timezone_name(), False
    described = services.describe_policy(
        fields["schedule"], fields["retention"], fields["time_zone"]
    )
    return {
        "fields": fields,
        "schedule_text": described["schedule"],
        "retention_lines": described["retention"],
        "zone": zone,
        "zone_from_policy": from_policy,
        "runs": services.preview_runs(fields["schedule"], zone, timezone.now(), 10),
        "initial_backup_label": BackupPolicy.InitialBackup(fields["initial_backup"]).label,
    }


def _time_zone_names():
    from portal.forms import COMMON_TIME_ZONES

    return COMMON_TIME_ZONES


class PolicyDetailView(PolicyBlade):
    """One policy: what it does, the next runs, the machines that use it; modify, delete."""

    template_name = "policies/policy_detail.html"

    @property
    def title(self):
        return self.policy.name

    def get_breadcrumbs(self):
        return [*self.policies_crumbs(), crumb(self.policy.name)]

    def machines(self):
        return self.scoped(
            Machine.objects.filter(vault=self.resource).select_related("policy")
        ).order_by("name")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        policy = self.policy
        now = timezone.now()
        machines = list(self.machines())
        using = [m for m in machines if m.policy_id == policy.pk]
        for machine in using:
            machine.effective_zone = effective_time_zone(policy, machine)
            runs = upcoming_runs(policy, machine, now, 1)
            machine.next_run = runs[0] if runs else None
        fields = {name: getattr(policy, name) for name in services.POLICY_FIELDS}
        context.update(
            policy=policy,
            summary=summarize(fields),
            machines=machines,
            using=using,
        )
        return context

    def post(self, request, *args, **kwargs):
        action = request.POST.get("action")
        if action == "delete":
            deny_unless(self.can(self.resource, Action.WRITE))
            try:
                services.delete_policy(request, self.policy)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                return redirect(self.policy_url())
            messages.success(request, _("Backup policy %(name)s deleted.") % {"name": self.policy})
            return redirect("vault-policies", self.resource.pk)
        if action == "assign":
            deny_unless(self.can(self.resource, Action.OPERATE))
            chosen = set(request.POST.getlist("machine"))
            try:
                for machine in self.machines():
                    machine.vault = self.resource
                    if str(machine.pk) in chosen and machine.policy_id != self.policy.pk:
                        services.assign_policy(request, machine, self.policy)
                    elif str(machine.pk) not in chosen and machine.policy_id == self.policy.pk:
                        services.assign_policy(request, machine, None)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, _("Machine assignments saved."))
        return redirect(self.policy_url())


class MachineThrottlingView(ResourceBladeView):
    """The agent's Change Properties → Throttling, for one registered machine."""

    model = Machine
    select_related = ("vault",)
    menu_entry = "throttling"
    template_name = "policies/throttling.html"

    @property
    def title(self):
        return _("Throttling")

    def get_menu(self):
        pk = self.resource.pk
        return [
            {
                "label": None,
                "items": [
                    ("overview", _("Overview"), reverse("machine-detail", args=[pk])),
                    ("throttling", _("Throttling"), reverse("machine-throttling", args=[pk])),
                ],
            }
        ]

    def get_breadcrumbs(self):
        machine = self.resource
        vault = machine.vault
        return [
            HOME,
            crumb(_("Recovery Services vaults"), reverse("vault-list")),
            crumb(vault.name, reverse("vault-detail", args=[vault.pk])),
            crumb(machine.name, reverse("machine-detail", args=[machine.pk])),
            crumb(self.title),
        ]

    def get(self, request, *args, **kwargs):
        form = ThrottlingForm(initial=ThrottlingForm.initial_from(self.resource))
        return self.render_to_response(self.get_context_data(form=form))

    def post(self, request, *args, **kwargs):
        deny_unless(self.can(self.resource, Action.OPERATE))
        form = ThrottlingForm(request.POST)
        if form.is_valid():
            try:
                set_throttling(request, self.resource, **form.throttling_fields())
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    name = ThrottlingForm.FIELD_FOR.get(field, field)
                    form.add_error(name if name in form.fields else None, errors)
            else:
                messages.success(
                    request,
                    _("Throttling settings saved. %(machine)s applies them at its next poll.")
                    % {"machine": self.resource.name},
                )
                return redirect("machine-throttling", self.resource.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)
