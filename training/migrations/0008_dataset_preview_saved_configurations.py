import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """A dataset's preview (rows as the recipe sees them, token lengths, cuts per preset; computed by the
    worker) and named saved launch configurations."""

    dependencies = [
        ('serving', '0006_full_finetunes'),
        ('training', '0007_checkpoint_weights_dir'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='dataset',
            name='preview',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='dataset',
            name='preview_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='dataset',
            name='preview_base',
            field=models.ForeignKey(blank=True, help_text='The base model whose tokenizer and chat template the preview used', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='serving.servedmodel'),
        ),
        migrations.AddField(
            model_name='dataset',
            name='preview_error',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='dataset',
            name='preview_status',
            field=models.CharField(blank=True, choices=[('', 'Not computed'), ('computing', 'Computing'), ('ready', 'Ready'), ('failed', 'Failed')], default='', max_length=12),
        ),
        migrations.CreateModel(
            name='SavedConfiguration',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, unique=True)),
                ('method', models.CharField(choices=[('sft', 'SFT'), ('dpo', 'DPO'), ('kto', 'KTO'), ('reward', 'Reward model'), ('grpo', 'GRPO (online RL)'), ('pretrain', 'Continued pretraining')], max_length=8)),
                ('preset', models.CharField(blank=True, max_length=64)),
                ('overrides', models.JSONField(blank=True, default=list, help_text='["key=value", ...] applied to the preset')),
                ('description', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
    ]
