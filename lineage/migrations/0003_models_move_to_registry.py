from django.db import migrations


# Model versions and pins moved to the registry app: the tables stay, only their owner changes.
state_operations = [
    migrations.RemoveField(
        model_name="modelversion",
        name="node",
    ),
    migrations.RemoveField(
        model_name="modelversion",
        name="predecessor",
    ),
    migrations.DeleteModel(
        name="ModelPin",
    ),
    migrations.DeleteModel(
        name="ModelVersion",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0002_models_and_pins"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations, database_operations=[]),
    ]
