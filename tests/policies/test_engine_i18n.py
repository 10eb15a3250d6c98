"""The policy engines speak the active language: summaries and messages come out translated
when made under Japanese, and exactly as before under English."""

from datetime import date, time

import pytest
from django.utils import translation

from policies.documents import schedule_from_doc
from policies.retention import (
    DailyRule,
    MonthlyRule,
    RetentionPolicy,
    WeeklyRule,
    describe_retention,
    retention_errors,
)
from policies.schedule import PolicyValidationError, Schedule, describe_schedule

SATURDAY, SUNDAY, WEDNESDAY = 5, 6, 2
SCHEDULE = Schedule("weekly", (time(9, 30), time(1)), (WEDNESDAY, SUNDAY), 2, date(2025, 1, 5))
POLICY = RetentionPolicy(
    daily=DailyRule(7),
    weekly=WeeklyRule((SATURDAY,), 4),
    monthly=MonthlyRule(12, weeks_of_month=("last",), weekdays=(SATURDAY,)),
)
# Weekly retention on Saturday with a schedule that runs on Sunday and Wednesday.
MISFIT = RetentionPolicy(weekly=WeeklyRule((SATURDAY,), 4))


def engine_output() -> tuple[str, list[str], list[str], list[str]]:
    with pytest.raises(PolicyValidationError) as refused:
        schedule_from_doc({"frequency": "daily", "times": ["9.30"]})
    return (
        describe_schedule(SCHEDULE, "Asia/Tokyo"),
        describe_retention(POLICY),
        retention_errors(MISFIT, SCHEDULE, security_minimums=False)["weekly"],
        refused.value.messages,
    )


def test_engines_speak_japanese_under_japanese():
    with translation.override("ja"):
        schedule, retention, misfit, refused = engine_output()
    assert schedule == "2 週間ごとの日曜日、水曜日の 01:00、09:30 (Asia/Tokyo の時刻)"
    assert retention == [
        "日単位のバックアップを 7 日間保持",
        "土曜日のバックアップを 4 週間保持",
        "毎月最終週の土曜日のバックアップを 12 か月間保持",
    ]
    assert "週単位の保持には土曜日のバックアップが必要です" in misfit[0]
    assert "日曜日、水曜日に実行されます" in misfit[0]
    assert refused == ["'9.30' は時刻ではありません。HH:MM 形式で指定してください (例: 09:30)。"]


def test_engines_are_unchanged_under_english():
    with translation.override("en"):
        schedule, retention, misfit, refused = engine_output()
    assert schedule == (
        "Every 2 weeks on Sunday and Wednesday at 01:00 and 09:30 (Asia/Tokyo time)"
    )
    assert retention == [
        "Daily backups kept 7 days",
        "Saturday backups kept 4 weeks",
        "Last Saturday of each month kept 12 months",
    ]
    assert misfit == [
        "Weekly retention on Saturday needs a backup on Saturday; "
        "the schedule runs on Sunday and Wednesday."
    ]
    assert refused == ["'9.30' is not a time; use HH:MM, e.g. 09:30."]


def test_the_language_is_the_one_active_at_the_call():
    """Messages are made when asked for, not when the modules were imported."""
    with translation.override("ja"):
        japanese = describe_schedule(Schedule("daily", (time(1),)))
    with translation.override("en"):
        english = describe_schedule(Schedule("daily", (time(1),)))
    assert (japanese, english) == ("毎日 01:00", "Every day at 01:00")
