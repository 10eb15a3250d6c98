from django.db import migrations

from portal.regions import load_regions


def add_regions(apps, schema_editor):
    load_regions(apps.get_model("portal", "Region"))


class Migration(migrations.Migration):
    dependencies = [("portal", "0002_initial")]
    operations = [migrations.RunPython(add_regions, migrations.RunPython.noop)]
