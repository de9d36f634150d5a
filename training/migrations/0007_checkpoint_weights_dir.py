from django.db import migrations, models


class Migration(migrations.Migration):
    """``Checkpoint.adapter_path`` held a LoRA adapter's directory or, for full fine-tunes, the whole
    model's: ``weights_dir`` names both (the column is renamed; no data changes)."""

    dependencies = [
        ("training", "0006_full_finetunes"),
    ]

    operations = [
        migrations.RenameField(model_name="checkpoint", old_name="adapter_path", new_name="weights_dir"),
        migrations.AlterField(
            model_name="checkpoint",
            name="finetuning_type",
            field=models.CharField(
                choices=[("lora", "LoRA adapter"), ("full", "Full model")], default="lora",
                help_text="What weights_dir holds: a LoRA adapter or a whole model", max_length=8,
            ),
        ),
    ]
