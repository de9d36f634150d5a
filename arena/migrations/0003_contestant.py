# arena.Contestant takes over ServedModel's sampling weight and new-model boost: one row per
# served model, copied before serving 0002 drops the columns (and copied back when reversed).

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

FIELDS = ("sampling_weight", "boost_weight", "boost_votes_left")


def copy_to_contestants(apps, schema_editor):
    ServedModel = apps.get_model("serving", "ServedModel")
    Contestant = apps.get_model("arena", "Contestant")
    Contestant.objects.bulk_create(
        Contestant(served_model_id=row["pk"], **{name: row[name] for name in FIELDS})
        for row in ServedModel.objects.values("pk", *FIELDS)
    )


def copy_back(apps, schema_editor):
    ServedModel = apps.get_model("serving", "ServedModel")
    Contestant = apps.get_model("arena", "Contestant")
    for row in Contestant.objects.values("served_model_id", *FIELDS):
        ServedModel.objects.filter(pk=row["served_model_id"]).update(**{name: row[name] for name in FIELDS})


class Migration(migrations.Migration):

    dependencies = [
        ("arena", "0002_rating_snapshot_elo_state"),
        ("serving", "0001_initial"),
    ]
    run_before = [
        ("serving", "0002_contestant_fields_to_arena"),
    ]

    operations = [
        migrations.CreateModel(
            name="Contestant",
            fields=[
                ("served_model", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                                      related_name="contestant", serialize=False,
                                                      to="serving.servedmodel")),
                ("sampling_weight", models.FloatField(
                    default=1.0, validators=[django.core.validators.MinValueValidator(0.0)])),
                ("boost_weight", models.FloatField(
                    default=1.0, validators=[django.core.validators.MinValueValidator(1.0)])),
                ("boost_votes_left", models.PositiveIntegerField(default=0)),
            ],
            options={"ordering": ["served_model__public_name"]},
        ),
        migrations.RunPython(copy_to_contestants, copy_back),
    ]
