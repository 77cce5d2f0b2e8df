from django.db import migrations


# Rollback requests moved to governance, retention and restores to lifecycle: the
# tables stay where they are, only Django's idea of who owns them changes.
state_operations = [
    migrations.RemoveField(
        model_name="packrestore",
        name="pack",
    ),
    migrations.DeleteModel(
        name="RetentionPolicy",
    ),
    migrations.RemoveField(
        model_name="retentionrun",
        name="approved_by",
    ),
    migrations.RemoveField(
        model_name="retentionrun",
        name="requested_by",
    ),
    migrations.RemoveField(
        model_name="rollbackrequest",
        name="dataset",
    ),
    migrations.RemoveField(
        model_name="rollbackrequest",
        name="decided_by",
    ),
    migrations.RemoveField(
        model_name="rollbackrequest",
        name="head",
    ),
    migrations.RemoveField(
        model_name="rollbackrequest",
        name="requested_by",
    ),
    migrations.RemoveField(
        model_name="rollbackrequest",
        name="result",
    ),
    migrations.RemoveField(
        model_name="rollbackrequest",
        name="target",
    ),
    migrations.DeleteModel(
        name="PackRestore",
    ),
    migrations.DeleteModel(
        name="RetentionRun",
    ),
    migrations.DeleteModel(
        name="RollbackRequest",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0009_remote_verification"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations, database_operations=[]),
    ]
