# Issue 19 (availability): errors the rater's prompt caused, recorded apart from the model's.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('arena', '0006_response_usage_cost_daily_spend'),
    ]

    operations = [
        migrations.AddField(
            model_name='response',
            name='rater_caused',
            field=models.BooleanField(default=False, help_text="The engine refused the rater's prompt (context overflow, a 4xx for its content): not counted toward an error hold"),
        ),
    ]
