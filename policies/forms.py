"""The Schedule Backup wizard's form and the Throttling form.

The forms only gather what the user chose into the documents the service functions take;
every rule (ranges, what fits the schedule, the time zone) is checked there, with the same
messages the API answers.
"""

from datetime import date

from django import forms
from django.utils.dates import MONTHS, WEEKDAYS
from django.utils.translation import gettext_lazy as _

from policies.models import BackupPolicy
from policies.retention import LAST, WEEKS_OF_MONTH
from policies.schedule import DISPLAY_WEEK_ORDER, MAX_TIMES_PER_DAY
from policies.throttling import KBPS_PER_MBPS

WEEKDAY_CHOICES = [(str(day), WEEKDAYS[day]) for day in DISPLAY_WEEK_ORDER]
MONTH_CHOICES = [(str(month), MONTHS[month]) for month in range(1, 13)]
DAY_OF_MONTH_CHOICES = [(str(day), str(day)) for day in range(1, 29)] + [(LAST, _("Last"))]
WEEK_LABELS = {
    "first": _("First"),
    "second": _("Second"),
    "third": _("Third"),
    "fourth": _("Fourth"),
    LAST: _("Last"),
}
WEEK_OF_MONTH_CHOICES = [(week, WEEK_LABELS[week]) for week in WEEKS_OF_MONTH]
BY_CHOICES = [("day", _("Day")), ("week", _("Week"))]
RULES = ("daily", "weekly", "monthly", "yearly")

# Which wizard tab shows the errors of each field (service names, dots as underscores).
TABS = {
    "name": "items",
    "items": "items",
    "exclusions": "items",
    "system_state": "items",
    "time_zone": "schedule",
    "initial_backup": "initial",
}
TAB_LABELS = {
    "items": _("Select items"),
    "schedule": _("Backup schedule"),
    "retention": _("Retention policy"),
    "initial": _("Initial backup type"),
}
# Form fields whose own errors (e.g. "Enter a whole number.") belong to a service field.
FORM_TO_SERVICE = {
    "frequency": "schedule_frequency",
    "weekdays": "schedule_weekdays",
    "every_weeks": "schedule_every_weeks",
    "anchor": "schedule_anchor",
    **{
        f"{rule}_{part}": f"retention_{rule}"
        for rule in RULES
        for part in ("enabled", "days", "weeks", "weekdays", "by", "months", "years")
    },
}


def error_key(field: str) -> str:
    return field.replace(".", "_")


def tab_of(key: str) -> str:
    if key in TABS:
        return TABS[key]
    if key.startswith("schedule"):
        return "schedule"
    if key.startswith("retention"):
        return "retention"
    return "items"


def _ints(values) -> list[int]:
    return [int(v) for v in values if str(v).lstrip("-").isdigit()]


def _number(value):
    """A whole number when it is one; otherwise the text, for the engine to explain."""
    value = (value or "").strip()
    if value.lstrip("-").isdigit():
        return int(value)
    return value or None


def _days_of_month(values) -> list:
    return [LAST if v == LAST else int(v) for v in values if v == LAST or str(v).isdigit()]


class PolicyWizardForm(forms.Form):
    name = forms.CharField(label=_("Policy name"), max_length=200, required=False)
    items = forms.CharField(
        label=_("Items to back up"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=_("One full path a line, such as /home or C:\\Data."),
    )
    system_state = forms.BooleanField(label=_("System State"), required=False)
    frequency = forms.ChoiceField(
        label=_("Schedule a backup every"),
        choices=[("daily", _("Day")), ("weekly", _("Week"))],
        widget=forms.RadioSelect,
    )
    weekdays = forms.MultipleChoiceField(label=_("On"), choices=WEEKDAY_CHOICES, required=False)
    every_weeks = forms.TypedChoiceField(
        label=_("Repeat every"),
        coerce=int,
        choices=[(str(n), str(n)) for n in range(1, 5)],
    )
    anchor = forms.DateField(label=_("Starting the week of"), required=False)
    time_zone = forms.CharField(label=_("Time zone"), required=False, max_length=200)
    daily_enabled = forms.BooleanField(required=False)
    daily_days = forms.CharField(required=False, max_length=20)
    weekly_enabled = forms.BooleanField(required=False)
    weekly_weekdays = forms.MultipleChoiceField(choices=WEEKDAY_CHOICES, required=False)
    weekly_weeks = forms.CharField(required=False, max_length=20)
    monthly_enabled = forms.BooleanField(required=False)
    monthly_by = forms.ChoiceField(choices=BY_CHOICES, required=False)
    monthly_days = forms.MultipleChoiceField(choices=DAY_OF_MONTH_CHOICES, required=False)
    monthly_weeks = forms.MultipleChoiceField(choices=WEEK_OF_MONTH_CHOICES, required=False)
    monthly_weekdays = forms.MultipleChoiceField(choices=WEEKDAY_CHOICES, required=False)
    monthly_months = forms.CharField(required=False, max_length=20)
    yearly_enabled = forms.BooleanField(required=False)
    yearly_months = forms.MultipleChoiceField(choices=MONTH_CHOICES, required=False)
    yearly_by = forms.ChoiceField(choices=BY_CHOICES, required=False)
    yearly_days = forms.MultipleChoiceField(choices=DAY_OF_MONTH_CHOICES, required=False)
    yearly_weeks = forms.MultipleChoiceField(choices=WEEK_OF_MONTH_CHOICES, required=False)
    yearly_weekdays = forms.MultipleChoiceField(choices=WEEKDAY_CHOICES, required=False)
    yearly_years = forms.CharField(required=False, max_length=20)
    initial_backup = forms.ChoiceField(
        label=_("Initial backup type"),
        choices=BackupPolicy.InitialBackup.choices,
        widget=forms.RadioSelect,
    )

    @classmethod
    def defaults(cls, today: date) -> dict:
        """A new policy: daily at 22:00, kept 30 days, as Azure's default policy keeps."""
        return {
            "frequency": "daily",
            "times": ["22:00"],
            "every_weeks": "1",
            "anchor": today,
            "daily_enabled": True,
            "daily_days": 30,
            "weekly_weekdays": ["6"],
            "weekly_weeks": 4,
            "monthly_by": "week",
            "monthly_weeks": [LAST],
            "monthly_weekdays": ["6"],
            "monthly_months": 12,
            "yearly_by": "week",
            "yearly_months": ["12"],
            "yearly_weeks": [LAST],
            "yearly_weekdays": ["6"],
            "yearly_years": 10,
            "initial_backup": BackupPolicy.InitialBackup.NETWORK,
            "exclusions": [],
        }

    @classmethod
    def initial_from(cls, policy, today: date) -> dict:
        initial = cls.defaults(today)
        schedule = policy.schedule
        initial.update(
            name=policy.name,
            items="\n".join(policy.items),
            exclusions=policy.exclusions,
            system_state=policy.system_state,
            frequency=schedule.get("frequency", "daily"),
            times=schedule.get("times", []),
            weekdays=[str(d) for d in schedule.get("weekdays", [])],
            every_weeks=str(schedule.get("every_weeks", 1)),
            anchor=schedule.get("anchor") or today,
            time_zone=policy.time_zone,
            initial_backup=policy.initial_backup,
            daily_enabled=False,
            weekly_enabled=False,
            monthly_enabled=False,
            yearly_enabled=False,
        )
        for rule, doc in policy.retention.items():
            initial[f"{rule}_enabled"] = True
            for key, value in doc.items():
                if key in ("days", "weeks", "months", "years") and not isinstance(value, list):
                    initial[f"{rule}_{key}"] = value
            weekdays = [str(d) for d in doc.get("weekdays", [])]
            if rule == "weekly":
                initial["weekly_weekdays"] = weekdays
                continue
            if rule in ("monthly", "yearly"):
                if rule == "yearly":
                    initial["yearly_months"] = [str(m) for m in doc.get("months", [])]
                if doc.get("days_of_month"):
                    initial[f"{rule}_by"] = "day"
                    initial[f"{rule}_days"] = [str(d) for d in doc["days_of_month"]]
                else:
                    initial[f"{rule}_by"] = "week"
                    initial[f"{rule}_weeks"] = doc.get("weeks_of_month", [])
                    initial[f"{rule}_weekdays"] = weekdays
        return initial

    # What the template shows: posted values when bound, else the initial ones.
    def times(self) -> list[str]:
        if self.is_bound:
            return [t.strip() for t in self.data.getlist("times") if t.strip()]
        return list(self.initial.get("times", []))

    def time_slots(self) -> list[str]:
        times = self.times()
        return times + [""] * max(0, MAX_TIMES_PER_DAY - len(times))

    def exclusions(self) -> list[dict]:
        if not self.is_bound:
            return list(self.initial.get("exclusions", []))
        folders = self.data.getlist("exclusion_folder")
        patterns = self.data.getlist("exclusion_pattern")
        subfolders = self.data.getlist("exclusion_subfolders")
        rows = []
        for index, folder in enumerate(folders):
            pattern = patterns[index] if index < len(patterns) else ""
            include = subfolders[index] if index < len(subfolders) else "yes"
            if folder.strip() or pattern.strip():
                rows.append(
                    {
                        "folder": folder.strip() or None,
                        "pattern": pattern.strip() or None,
                        "include_subfolders": include != "no",
                    }
                )
        return rows

    def exclusion_rows(self) -> list[dict]:
        """The rows to draw: the exclusions, then one blank row to fill in."""
        return self.exclusions() + [{"folder": "", "pattern": "", "include_subfolders": True}]

    def value(self, name):
        return self[name].value()

    def policy_fields(self) -> dict:
        """The chosen settings as the service functions take them (after is_valid())."""
        data = self.cleaned_data
        weekly = data["frequency"] == "weekly"
        schedule = {"frequency": data["frequency"], "times": self.times()}
        if weekly:
            schedule["weekdays"] = _ints(data["weekdays"])
            schedule["every_weeks"] = data["every_weeks"]
            if data["every_weeks"] > 1 and data["anchor"]:
                schedule["anchor"] = data["anchor"].isoformat()
        retention = {}
        if data["daily_enabled"]:
            retention["daily"] = {"days": _number(data["daily_days"])}
        if data["weekly_enabled"]:
            retention["weekly"] = {
                "weekdays": _ints(data["weekly_weekdays"]),
                "weeks": _number(data["weekly_weeks"]),
            }
        for rule, length in (("monthly", "months"), ("yearly", "years")):
            if not data[f"{rule}_enabled"]:
                continue
            doc = {length: _number(data[f"{rule}_{length}"])}
            if rule == "yearly":
                doc["months"] = _ints(data["yearly_months"])
            if data[f"{rule}_by"] == "day":
                doc["days_of_month"] = _days_of_month(data[f"{rule}_days"])
            else:
                doc["weeks_of_month"] = list(data[f"{rule}_weeks"])
                doc["weekdays"] = _ints(data[f"{rule}_weekdays"])
            retention[rule] = doc
        return {
            "name": data["name"],
            "items": [line.strip() for line in data["items"].splitlines() if line.strip()],
            "exclusions": self.exclusions(),
            "system_state": data["system_state"],
            "schedule": schedule,
            "retention": retention,
            "time_zone": data["time_zone"].strip(),
            "initial_backup": data["initial_backup"],
        }

    def error_messages(self) -> dict[str, list[str]]:
        """The form's own errors under the service's field names."""
        errors = {}
        for field, messages in self.errors.items():
            key = FORM_TO_SERVICE.get(field, field)
            errors.setdefault(key, []).extend(messages)
        return errors


UNIT_CHOICES = [("kbps", _("Kbps")), ("mbps", _("Mbps"))]


def split_kbps(kbps):
    """1,023,000 Kbps -> (1023, "mbps"); 512 -> (512, "kbps")."""
    if kbps is None:
        return None, "mbps"
    if kbps >= KBPS_PER_MBPS and kbps % KBPS_PER_MBPS == 0:
        return kbps // KBPS_PER_MBPS, "mbps"
    return kbps, "kbps"


class ThrottlingForm(forms.Form):
    enabled = forms.BooleanField(
        label=_("Enable internet bandwidth usage throttling for backup operations"),
        required=False,
    )
    work_start = forms.CharField(label=_("Start time"), required=False, max_length=20)
    work_end = forms.CharField(label=_("End time"), required=False, max_length=20)
    work_days = forms.MultipleChoiceField(
        label=_("Work days"), choices=WEEKDAY_CHOICES, required=False
    )
    work_hours_value = forms.IntegerField(label=_("Work hours bandwidth"), required=False)
    work_hours_unit = forms.ChoiceField(choices=UNIT_CHOICES, required=False)
    off_hours_value = forms.IntegerField(label=_("Non-work hours bandwidth"), required=False)
    off_hours_unit = forms.ChoiceField(choices=UNIT_CHOICES, required=False)

    FIELD_FOR = {
        "work_hours_kbps": "work_hours_value",
        "off_hours_kbps": "off_hours_value",
        "enabled": "enabled",
    }

    @classmethod
    def initial_from(cls, machine) -> dict:
        work, work_unit = split_kbps(machine.work_hours_kbps)
        off, off_unit = split_kbps(machine.off_hours_kbps)
        return {
            "enabled": machine.throttle_enabled,
            "work_start": machine.work_start.strftime("%H:%M") if machine.work_start else "09:00",
            "work_end": machine.work_end.strftime("%H:%M") if machine.work_end else "17:00",
            "work_days": [str(d) for d in (machine.work_days or [0, 1, 2, 3, 4])],
            "work_hours_value": work if work is not None else 2,
            "work_hours_unit": work_unit,
            "off_hours_value": off if off is not None else 100,
            "off_hours_unit": off_unit,
        }

    def _kbps(self, prefix):
        value = self.cleaned_data[f"{prefix}_value"]
        if value is None:
            return None
        return value * KBPS_PER_MBPS if self.cleaned_data[f"{prefix}_unit"] == "mbps" else value

    def throttling_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "enabled": data["enabled"],
            "work_days": _ints(data["work_days"]),
            "work_start": data["work_start"].strip() or None,
            "work_end": data["work_end"].strip() or None,
            "work_hours_kbps": self._kbps("work_hours"),
            "off_hours_kbps": self._kbps("off_hours"),
        }
