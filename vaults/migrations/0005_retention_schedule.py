from django.db import migrations


def add_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        func="vaults.tasks.retention_and_gc",
        defaults={"name": "retention and garbage collection", "schedule_type": "H", "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func="vaults.tasks.retention_and_gc").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("vaults", "0004_recoverypoint_deleted_at_recoverypoint_purge_after"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(add_schedule, remove_schedule)]
