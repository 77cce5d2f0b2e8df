import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# The table catalog_rollbackrequest exists (catalog 0005): take it over, create nothing.
state_operations = [
    migrations.CreateModel(
        name="RollbackRequest",
        fields=[
            (
                "id",
                models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
            ),
            ("branch", models.CharField(max_length=200)),
            ("reason", models.TextField()),
            ("requester_name", models.CharField(max_length=150)),
            ("created", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            (
                "state",
                models.CharField(
                    choices=[
                        ("requested", "waiting for approval"),
                        ("approved", "approved, queued"),
                        ("restoring", "restoring from cold storage"),
                        ("verifying", "verifying every byte"),
                        ("applying", "moving the branch"),
                        ("done", "done"),
                        ("rejected", "rejected"),
                        ("failed", "failed"),
                    ],
                    db_index=True,
                    default="requested",
                    max_length=16,
                ),
            ),
            ("state_changed", models.DateTimeField(default=django.utils.timezone.now)),
            ("decider_name", models.CharField(blank=True, max_length=150)),
            ("decided", models.DateTimeField(blank=True, null=True)),
            ("decision_comment", models.TextField(blank=True)),
            ("error", models.TextField(blank=True)),
            ("progress", models.CharField(blank=True, max_length=300)),
            (
                "dataset",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="rollbacks",
                    to="catalog.dataset",
                ),
            ),
            (
                "decided_by",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "head",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.PROTECT, related_name="+", to="catalog.version"
                ),
            ),
            (
                "requested_by",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "result",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="+",
                    to="catalog.version",
                ),
            ),
            (
                "target",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.PROTECT, related_name="+", to="catalog.version"
                ),
            ),
        ],
        options={
            "db_table": "catalog_rollbackrequest",
            "ordering": ["-created"],
            "indexes": [models.Index(fields=["dataset", "branch", "state"], name="rollback_branch_state")],
        },
    ),
]


def _move_content_types(apps, schema_editor):
    """Admin history and any permission rows follow the models to their new app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ["rollbackrequest"]:
        ContentType.objects.filter(app_label="catalog", model=model).update(app_label="governance")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("catalog", "0010_models_move_to_their_apps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations, database_operations=[]),
        migrations.RunPython(_move_content_types, migrations.RunPython.noop),
    ]
