"""Backup center: one dashboard over every visible vault, charts with text alternatives."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.vaults.test_alerts import backup_job, make_machine, make_policy, make_vault
from vaults import alert_checks, alerts, charts
from vaults.models import StorageSample, Vault

# Charts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, step", [(0.3, 0.5), (1, 1), (1.2, 2), (2.1, 2.5), (3, 5), (7, 10), (12, 20), (260, 500)]
)
def test_nice_steps(raw, step):
    assert charts.nice_step(raw) == step


@pytest.mark.parametrize(
    "maximum, integer, expected",
    [
        (0, True, (4, 1)),
        (3, True, (3, 1)),
        (7, True, (8, 2)),
        (13, True, (15, 5)),
        (101, True, (150, 50)),
        (3.3, False, (4, 1)),
    ],
)
def test_axes_start_at_zero_and_cover_the_maximum(maximum, integer, expected):
    assert charts.axis(maximum, integer=integer) == expected


def test_bytes_read_in_binary_units():
    assert charts.format_bytes(0) == "0"
    assert charts.format_bytes(512) == "512 B"
    assert charts.format_bytes(1536) == "1.5 KB"
    assert charts.format_bytes(3 * 1024**3) == "3 GB"
    assert charts.format_bytes(512 * 1024**2, 1024**3) == "0.5 GB"


def test_stacked_bars_geometry():
    series = [("completed", "Completed"), ("failed", "Failed")]
    chart = charts.stacked_bars(
        ["Mon", "Tue", "Wed"],
        series,
        [{"completed": 6, "failed": 2}, {}, {"completed": 3}],
        width=300,
        height=150,
        margin=(10, 10, 20, 30),
    )
    box = chart.box
    assert (box.left, box.top, box.right, box.bottom) == (30, 10, 290, 130)
    assert [t.label for t in chart.ticks] == ["0", "2", "4", "6", "8"]
    assert chart.ticks[0].y == box.bottom and chart.ticks[-1].y == box.top
    monday, tuesday, wednesday = chart.columns
    completed, failed = monday.segments
    # stacked from the bottom, heights proportional to values against the axis top (8)
    assert completed.y + completed.height == pytest.approx(box.bottom)
    assert failed.y + failed.height == pytest.approx(completed.y)
    assert completed.height == pytest.approx(box.height * 6 / 8)
    assert failed.height == pytest.approx(box.height * 2 / 8)
    assert tuesday.segments == () and tuesday.total == 0 and tuesday.cells == (0, 0)
    assert monday.cells == (6, 2) and chart.total == 11
    for column in chart.columns:
        assert box.left <= column.x and column.x + column.width <= box.right
    assert wednesday.center == pytest.approx(wednesday.x + wednesday.width / 2, abs=0.01)


def test_bar_labels_thin_out_but_keep_the_latest_day():
    labels = [f"d{i}" for i in range(14)]
    chart = charts.stacked_bars(labels, [("a", "A")], [{}] * 14, max_labels=7)
    shown = [c.label for c in chart.columns if c.show_label]
    assert shown[-1] == "d13" and len(shown) == 7


def test_area_chart_skips_days_without_data():
    gib = 1024**3
    chart = charts.area_chart(
        ["a", "b", "c", "d"],
        [None, gib, 2 * gib, 3 * gib],
        width=200,
        height=100,
        margin=(0, 0, 20, 40),
    )
    assert [t.label for t in chart.ticks] == ["0", "1 GB", "2 GB", "3 GB"]
    xs = [p.x for p in chart.points]
    assert xs == [40, 93.33, 146.67, 200]
    assert chart.points[0].y is None and chart.points[-1].y == 0
    assert chart.line == "M93.33,53.33 L146.67,26.67 L200.0,0.0"
    assert chart.area.endswith("L200.0,80 L93.33,80 Z")
    assert chart.last.text == "3 GB" and chart.known == 3
    single = charts.area_chart(["today"], [5.0], bytes_axis=False)
    assert single.line == "" and single.known == 1 and single.last.value == 5.0


# The page ----------------------------------------------------------------------------------


def build(personas, vaults: int, prefix="contoso-vault-"):
    """``vaults`` vaults in tenant A, each with servers, jobs, alerts and storage samples."""
    now = timezone.now()
    made = []
    for i in range(vaults):
        vault = make_vault(personas.tenant_a, personas.sub_a, personas.rg_a, name=f"{prefix}{i}")
        Vault.objects.filter(pk=vault.pk).update(storage_bytes=(i + 1) * 10 * 1024**3)
        policy = make_policy(vault)
        for n in range(2):
            machine = make_machine(vault, f"srv-{i}-{n}", policy=policy)
            for day in range(3):
                backup_job(machine, now - timedelta(days=day, hours=1))
            backup_job(machine, now - timedelta(hours=2), state="failed")
        alerts.raise_alert(
            "backup_failed", tenant=vault.tenant, vault=vault, machine=machine,
            subject_id=machine.pk, subject_name=machine.name, details={"error": "Disk full"},
        )  # fmt: skip
        for day in range(1, 20):
            StorageSample.objects.create(
                tenant=vault.tenant, vault=vault, day=(now - timedelta(days=day)).date(),
                bytes=(i + 1) * (10 - day * 0.2) * 1024**3, recorded_at=now,
            )  # fmt: skip
        made.append(vault)
    return made


@pytest.mark.django_db
def test_the_backup_center_shows_counters_charts_and_their_data(personas, client_for):
    build(personas, 2)
    page = client_for(personas.reader).get("/backup-center/").content.decode()
    assert page.count('<svg class="chart-svg"') == 2
    assert page.count("Show data") == 2
    # numbers on hover: each day's column and point has a <title>
    titles = re.findall(r"<title>(\w{3} \d+: [^<]*)</title>", page)
    assert len(titles) == 14 + 30
    assert any("Completed 4" in t for t in titles[:14]) and any(
        "Failed 4" in t for t in titles[:14]
    )
    assert titles[-1].endswith(": 30 GB")  # today: the live figure
    assert "Backup failed" in page and "Disk full" in page
    assert ">4</span>" in page  # protected servers
    assert "contoso-vault-1" in page and "contoso-vault-0" in page


@pytest.mark.django_db
def test_the_backup_center_runs_a_constant_number_of_queries(
    personas, client_for, django_assert_max_num_queries
):
    client = client_for(personas.owner)
    client.get("/backup-center/")  # warm the session and the caches
    build(personas, 2)
    with django_assert_max_num_queries(20) as small:
        assert client.get("/backup-center/").status_code == 200
    build(personas, 8, prefix="more-vault-")
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        assert client.get("/backup-center/").status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.django_db
def test_another_tenant_sees_nothing_of_tenant_a(personas, client_for):
    build(personas, 2)
    tenant_b_vault = make_vault(personas.tenant_b, personas.sub_b, personas.rg_b, name="b-vault")
    page = client_for(personas.owner_b).get("/backup-center/").content.decode()
    for name in ("contoso-vault-0", "srv-0-0", "Disk full", "Backup failed"):
        assert name not in page
    assert "b-vault" in page
    counters = page[page.index("bc-counters") : page.index("bc-grid")]
    assert re.findall(r'class="stat-value">(\d+)<', counters) == ["1", "0", "0", "0", "0"]
    assert tenant_b_vault.pk


@pytest.mark.django_db
def test_storage_samples_are_recorded_once_a_day_and_carried_forward(personas, client_for):
    vault = make_vault(personas.tenant_a, personas.sub_a, personas.rg_a)
    now = timezone.now()
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=1024**3)
    assert alert_checks.record_storage_samples(now - timedelta(days=3)) == 1
    Vault.objects.filter(pk=vault.pk).update(storage_bytes=2 * 1024**3)
    alert_checks.record_storage_samples(now - timedelta(days=3, hours=-1))  # same day: overwritten
    assert StorageSample.objects.get().bytes == 2 * 1024**3
    from vaults.views.monitoring import storage_chart

    chart = storage_chart(Vault.objects.values("pk"), 3 * 1024**3, now)
    values = [p.value for p in chart.points]
    assert values[:-4] == [None] * 26
    assert values[-4:] == [2 * 1024**3, 2 * 1024**3, 2 * 1024**3, 3 * 1024**3]
