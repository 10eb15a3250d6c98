import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.schedule import (
    PolicyValidationError,
    Schedule,
    describe_schedule,
    local_run_instant,
    next_runs,
    parse_time_zone,
    schedule_errors,
    validate_schedule,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
# Zones with 1-hour, 30-minute, negative (Dublin), midnight (Sao Paulo) and whole-day (Apia,
# 2011-12-30) shifts, plus a 45-minute base offset.
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Europe/Dublin",
    "Pacific/Apia",
    "Asia/Kathmandu",
]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def daily(*times: time) -> Schedule:
    return Schedule("daily", times)


def local_walls(runs, zone) -> list[str]:
    return [run.astimezone(zone).strftime("%Y-%m-%d %H:%M %z") for run in runs]


# --- DST tables -------------------------------------------------------------------------------

DST_CASES = [
    # Spring forward: 02:30 does not exist on 2025-03-30 in Berlin; it runs once at 03:00 CEST.
    (
        BERLIN,
        daily(time(2, 30)),
        utc(2025, 3, 29, 12),
        [utc(2025, 3, 30, 1), utc(2025, 3, 31, 0, 30)],
    ),
    # Two (three) scheduled times inside the same gap collapse into one run.
    (
        BERLIN,
        daily(time(2, 0), time(2, 30), time(3, 0)),
        utc(2025, 3, 29, 12),
        [utc(2025, 3, 30, 1), utc(2025, 3, 31, 0), utc(2025, 3, 31, 0, 30), utc(2025, 3, 31, 1)],
    ),
    # Fall back: 02:30 happens twice on 2025-10-26 in Berlin; it runs once, in CEST.
    (
        BERLIN,
        daily(time(2, 30)),
        utc(2025, 10, 25, 12),
        [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)],
    ),
    (
        NEW_YORK,
        daily(time(2, 30)),
        utc(2025, 3, 8, 12),
        [utc(2025, 3, 9, 7), utc(2025, 3, 10, 6, 30)],
    ),
    (
        NEW_YORK,
        daily(time(1, 30)),
        utc(2025, 11, 1, 12),
        [utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)],
    ),
    # Lord Howe shifts by 30 minutes: 02:00-02:30 is skipped, 01:30-02:00 repeats.
    (
        LORD_HOWE,
        daily(time(2, 15)),
        utc(2025, 10, 4, 0),
        [utc(2025, 10, 4, 15, 30), utc(2025, 10, 5, 15, 15)],
    ),
    (
        LORD_HOWE,
        daily(time(1, 45)),
        utc(2025, 4, 5, 0),
        [utc(2025, 4, 5, 14, 45), utc(2025, 4, 6, 15, 15)],
    ),
]


@pytest.mark.parametrize(("zone", "schedule", "after", "expected"), DST_CASES)
def test_dst_transitions_run_once(zone, schedule, after, expected):
    assert next_runs(schedule, zone, after, len(expected)) == expected


def test_spring_forward_runs_at_the_end_of_the_gap_in_local_time():
    runs = next_runs(daily(time(2, 30)), "Europe/Berlin", utc(2025, 3, 29, 12), 2)
    assert local_walls(runs, BERLIN) == ["2025-03-30 03:00 +0200", "2025-03-31 02:30 +0200"]
    lord_howe = next_runs(daily(time(2, 15)), LORD_HOWE, utc(2025, 10, 4), 1)
    assert local_walls(lord_howe, LORD_HOWE) == ["2025-10-05 02:30 +1100"]


def test_local_run_instant_resolves_gaps_and_repeats():
    assert local_run_instant(date(2025, 3, 30), time(2, 30), "Europe/Berlin") == utc(2025, 3, 30, 1)
    assert local_run_instant(date(2025, 10, 26), time(2, 30), BERLIN) == utc(2025, 10, 26, 0, 30)
    assert local_run_instant(date(2025, 4, 6), time(1, 45), LORD_HOWE) == utc(2025, 4, 5, 14, 45)
    # Apia skipped 2011-12-30 entirely; its runs move to the first instant of 2011-12-31.
    apia = local_run_instant(date(2011, 12, 30), time(12), "Pacific/Apia")
    assert apia == utc(2011, 12, 30, 10)
    assert local_run_instant(date(2025, 6, 1), time(12), "UTC").tzinfo is UTC


def test_every_two_weeks_runs_in_the_anchor_week_and_every_second_week_after():
    schedule = Schedule("weekly", (time(9, 30), time(1, 0)), (6, 2), 2, date(2025, 1, 5))
    runs = next_runs(schedule, BERLIN, utc(2024, 12, 30), 8)
    assert [run.astimezone(BERLIN).strftime("%a %Y-%m-%d %H:%M") for run in runs] == [
        "Wed 2025-01-01 01:00",
        "Wed 2025-01-01 09:30",
        "Sun 2025-01-05 01:00",
        "Sun 2025-01-05 09:30",
        "Wed 2025-01-15 01:00",
        "Wed 2025-01-15 09:30",
        "Sun 2025-01-19 01:00",
        "Sun 2025-01-19 09:30",
    ]


def test_every_three_weeks_also_runs_in_weeks_before_the_anchor():
    # Anchor is a Thursday: its ISO week (Mon 2025-03-03) is a run week, as is 3 weeks earlier.
    schedule = Schedule("weekly", (time(12),), (0,), 3, date(2025, 3, 6))
    runs = next_runs(schedule, "UTC", utc(2025, 2, 1), 3)
    assert runs == [utc(2025, 2, 10, 12), utc(2025, 3, 3, 12), utc(2025, 3, 24, 12)]


def test_next_runs_edge_arguments():
    assert next_runs(daily(time(1)), "UTC", utc(2025, 1, 1), 0) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        next_runs(daily(time(1)), "UTC", datetime(2025, 1, 1), 1)
    with pytest.raises(PolicyValidationError):
        next_runs(Schedule("weekly", (time(1),)), "UTC", utc(2025, 1, 1), 1)
    with pytest.raises(PolicyValidationError):
        next_runs(daily(time(1)), "Mars/Base", utc(2025, 1, 1), 1)


def test_next_runs_is_fast():
    sparse = Schedule("weekly", (time(3),), (6,), 4, date(2025, 1, 5))
    started = clock.perf_counter()
    for _ in range(100):
        next_runs(sparse, BERLIN, utc(2025, 1, 1), 10)
    assert (clock.perf_counter() - started) / 100 < 0.005


# --- validation and descriptions ----------------------------------------------------------------

VALIDATION_CASES = [
    (
        daily(time(1), time(2), time(3), time(4)),
        {"times": ["A daily schedule takes 1 to 3 times; remove 1 time."]},
    ),
    (
        Schedule("weekly", (), (6,)),
        {"times": ["A weekly schedule takes 1 to 3 times; add a time."]},
    ),
    (daily(time(1, 0, 30)), {"times": ["Times must be whole minutes between 00:00 and 23:59."]}),
    (daily("09:30"), {"times": ["Times must be whole minutes between 00:00 and 23:59."]}),
    (
        daily(time(9, 30), time(9, 30)),
        {"times": ["Each time can be chosen once; remove the repeated 09:30."]},
    ),
    (
        daily(time(9, 30, tzinfo=UTC)),
        {
            "times": [
                "Times are local to the schedule's time zone; remove the time zone from 09:30."
            ]
        },
    ),
    (
        Schedule("weekly", (time(1),)),
        {"weekdays": ["Choose at least one day for a weekly schedule."]},
    ),
    (
        Schedule("weekly", (time(1),), (6, 7, 6)),
        {
            "weekdays": [
                "Days are numbered 0 (Monday) to 6 (Sunday); remove 7.",
                "Choose each day once; Sunday is chosen twice.",
            ]
        },
    ),
    (Schedule("weekly", (time(1),), (6,), 5), {"every_weeks": ["Repeat every 1 to 4 weeks."]}),
    (Schedule("weekly", (time(1),), (6,), 0), {"every_weeks": ["Repeat every 1 to 4 weeks."]}),
    (
        Schedule("weekly", (time(1),), (6,), 2),
        {
            "anchor": [
                "Repeating every 2 weeks needs a start date; "
                "choose the week the schedule starts in."
            ]
        },
    ),
    (
        Schedule("daily", (time(1),), (6,), 2),
        {
            "weekdays": [
                "A daily schedule runs every day; clear the chosen days or make it weekly."
            ],
            "every_weeks": [
                "A daily schedule runs every day; set repeat to 1 week or make it weekly."
            ],
        },
    ),
    (Schedule("hourly", (time(1),)), {"frequency": ["Choose a daily or weekly schedule."]}),
]


@pytest.mark.parametrize(("schedule", "expected"), VALIDATION_CASES)
def test_validation_messages_say_what_to_change(schedule, expected):
    assert schedule_errors(schedule) == expected
    with pytest.raises(PolicyValidationError) as raised:
        validate_schedule(schedule)
    assert raised.value.errors == expected


def test_valid_schedules_pass():
    validate_schedule(daily(time(0), time(23, 59)))
    validate_schedule(Schedule("weekly", (time(1),), (0, 6), 4, date(2025, 1, 1)))
    validate_schedule(Schedule("weekly", (time(1),), (0,), 1))


@pytest.mark.parametrize(
    "name", ["Mars/Base", "", "Europe", "/etc/localtime", "../UTC", "localtime"]
)
def test_unknown_time_zones_are_refused(name):
    with pytest.raises(PolicyValidationError) as raised:
        parse_time_zone(name)
    message = f"Unknown time zone '{name}'. Use an IANA name such as Europe/Berlin."
    assert raised.value.errors == {"time_zone": [message]}


def test_parse_time_zone_accepts_iana_names():
    assert parse_time_zone("Australia/Lord_Howe") == LORD_HOWE


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            Schedule("weekly", (time(9, 30), time(1)), (6, 2), 2, date(2025, 1, 5)),
            "Every 2 weeks on Sunday and Wednesday at 01:00 and 09:30",
        ),
        (daily(time(18), time(0)), "Every day at 00:00 and 18:00"),
        (
            Schedule("weekly", (time(7),), (4, 0, 5)),
            "Every week on Monday, Friday and Saturday at 07:00",
        ),
    ],
)
def test_describe_schedule(schedule, expected):
    assert describe_schedule(schedule) == expected


def test_describe_schedule_can_name_the_time_zone():
    summary = describe_schedule(daily(time(1)), "Europe/Berlin")
    assert summary == "Every day at 01:00 (Europe/Berlin time)"


# --- properties -------------------------------------------------------------------------------


def _transition_days(zone_name: str) -> list[datetime]:
    zone = ZoneInfo(zone_name)
    days = [utc(2010, 1, 1) + timedelta(days=n) for n in range(365 * 21)]
    offsets = [day.astimezone(zone).utcoffset() for day in days]
    return [days[n] for n in range(1, len(days)) if offsets[n] != offsets[n - 1]]


TRANSITIONS = {name: _transition_days(name) for name in ZONES}

minute_times = st.builds(
    time,
    st.one_of(st.integers(0, 23), st.integers(0, 3)),
    st.one_of(st.integers(0, 59), st.sampled_from([0, 15, 30, 45])),
)
time_tuples = st.lists(minute_times, min_size=1, max_size=3, unique=True).map(tuple)
schedules = st.one_of(
    st.builds(Schedule, st.just("daily"), time_tuples),
    st.builds(
        Schedule,
        st.just("weekly"),
        time_tuples,
        st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True).map(tuple),
        st.integers(1, 4),
        st.dates(date(2000, 1, 1), date(2040, 1, 1)),
    ),
)


@st.composite
def zone_and_after(draw):
    name = draw(st.sampled_from(ZONES))
    anywhere = st.datetimes(datetime(2010, 1, 1), datetime(2030, 12, 1), timezones=st.just(UTC))
    if TRANSITIONS[name] and draw(st.booleans()):
        near = draw(st.sampled_from(TRANSITIONS[name]))
        return name, near - draw(st.timedeltas(timedelta(0), timedelta(days=3)))
    return name, draw(anywhere)


def _run_week(schedule: Schedule, day: date) -> bool:
    if schedule.frequency == "daily":
        return True
    week_number = lambda d: (d.toordinal() - d.isoweekday()) // 7  # noqa: E731
    distance = week_number(day) - week_number(schedule.anchor)
    return day.weekday() in schedule.weekdays and distance % schedule.every_weeks == 0


def _oracle_instant(day: date, t: time, zone: ZoneInfo) -> datetime:
    """Independent DST rule: scan forward minute by minute to the first wall time that exists."""
    wall = datetime.combine(day, t)
    while True:
        instant = wall.replace(tzinfo=zone).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            return instant
        wall += timedelta(minutes=1)


@settings(deadline=None)
@given(schedules, zone_and_after(), st.integers(1, 12))
def test_runs_match_an_independent_oracle(schedule, zone_after, count):
    name, after = zone_after
    zone = ZoneInfo(name)
    runs = next_runs(schedule, name, after, count)

    assert len(runs) == count
    assert all(run.tzinfo is UTC for run in runs)
    assert all(earlier < later for earlier, later in zip(runs, runs[1:], strict=False))
    assert runs[0] > after

    first_day = after.astimezone(zone).date() - timedelta(days=1)
    last_day = runs[-1].astimezone(zone).date()
    expected = set()
    for offset in range((last_day - first_day).days + 1):
        day = first_day + timedelta(days=offset)
        if _run_week(schedule, day):
            expected.update(_oracle_instant(day, t, zone) for t in schedule.times)
    assert runs == sorted(run for run in expected if after < run <= runs[-1])


@settings(deadline=None)
@given(schedules, zone_and_after(), st.integers(1, 12))
def test_each_run_is_a_scheduled_time_or_the_end_of_a_gap(schedule, zone_after, count):
    name, after = zone_after
    zone = ZoneInfo(name)
    for run in next_runs(schedule, zone, after, count):
        local = run.astimezone(zone)
        if local.time().replace(fold=0) in schedule.times:
            assert local.fold == 0, "a repeated wall time must run at its first occurrence"
        else:
            just_before = (run - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
            assert local.replace(tzinfo=None) - just_before > timedelta(seconds=1)


@settings(deadline=None)
@given(schedules, zone_and_after(), st.integers(2, 15), st.data())
def test_restarting_from_a_run_continues_the_sequence(schedule, zone_after, count, data):
    name, after = zone_after
    runs = next_runs(schedule, name, after, count)
    k = data.draw(st.integers(0, count - 1))
    assert next_runs(schedule, name, runs[k], count - k - 1) == runs[k + 1 :]
    assert next_runs(schedule, name, after, k + 1) == runs[: k + 1]
    assert next_runs(schedule, name, after.astimezone(ZoneInfo(name)), count) == runs


@settings(deadline=None)
@given(schedules, st.sampled_from(ZONES), st.dates(date(2010, 1, 1), date(2030, 12, 1)))
def test_a_seven_day_window_holds_the_expected_number_of_runs(schedule, name, first_day):
    zone = ZoneInfo(name)
    start = local_run_instant(first_day, time(0), zone)
    end = local_run_instant(first_day + timedelta(days=7), time(0), zone)
    runs = next_runs(schedule, zone, start - timedelta(microseconds=1), 3 * 7 + 1)
    in_window = [run for run in runs if run < end]
    run_days = [first_day + timedelta(days=n) for n in range(7)]
    expected = len(schedule.times) * sum(_run_week(schedule, day) for day in run_days)

    hours = [start + timedelta(hours=n) for n in range(int((end - start).total_seconds()) // 3600)]
    changes_offset = len({hour.astimezone(zone).utcoffset() for hour in hours + [end]}) > 1
    if changes_offset:
        # Only runs that collapse into a spring-forward gap are lost; falling back adds none.
        assert expected - len(schedule.times) <= len(in_window) <= expected
    else:
        assert len(in_window) == expected


def test_seven_day_window_counts_exactly_on_a_quiet_week():
    schedule = Schedule("weekly", (time(1), time(13)), (0, 3), 2, date(2025, 6, 2))
    runs = next_runs(schedule, BERLIN, utc(2025, 6, 1), 8)
    assert len([run for run in runs if run < utc(2025, 6, 8)]) == 4


def test_hypothesis_strategies_reach_dst_days():
    # Guards the near-transition strategy: without transitions the DST properties are vacuous.
    assert len(TRANSITIONS["Europe/Berlin"]) >= 40
    assert len(TRANSITIONS["Australia/Lord_Howe"]) >= 40
    assert any(day.year == 2011 and day.month == 12 for day in TRANSITIONS["Pacific/Apia"])
