from django.db import migrations


def add_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        func="vaults.alert_checks.hourly",
        defaults={"name": "alerts-hourly", "schedule_type": "H", "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        func="vaults.alert_checks.hourly"
    ).delete()


class Migration(migrations.Migration):
    """Hourly: storage samples for the charts, alert digests, e-mail retries."""

    dependencies = [
        ("vaults", "0006_alert_storagesample_vaultwebhook_alertdelivery_and_more"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(add_schedule, remove_schedule)]
