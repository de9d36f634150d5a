# The sampling weight and new-model boost moved to arena.Contestant (arena 0003 copies them first).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("serving", "0001_initial"),
    ]

    operations = [
        migrations.RemoveField(model_name="servedmodel", name="boost_votes_left"),
        migrations.RemoveField(model_name="servedmodel", name="boost_weight"),
        migrations.RemoveField(model_name="servedmodel", name="sampling_weight"),
    ]
