import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

# The tables catalog_retention* and catalog_packrestore exist (catalog 0007, 0008): take
# them over, create nothing.
state_operations = [
    migrations.CreateModel(
        name="RetentionPolicy",
        fields=[
            (
                "id",
                models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
            ),
            ("pattern", models.CharField(max_length=200, unique=True)),
            ("position", models.PositiveIntegerField(default=100)),
            ("keep_forever", models.BooleanField(default=False)),
            (
                "expire_after_days",
                models.PositiveIntegerField(
                    blank=True,
                    help_text="versions expire this many days after the branch's last commit",
                    null=True,
                ),
            ),
            (
                "warm_after_days",
                models.PositiveIntegerField(blank=True, help_text="days without access", null=True),
            ),
            (
                "cold_after_days",
                models.PositiveIntegerField(blank=True, help_text="days without access", null=True),
            ),
            ("updated", models.DateTimeField(default=django.utils.timezone.now)),
        ],
        options={
            "verbose_name_plural": "retention policies",
            "db_table": "catalog_retentionpolicy",
            "ordering": ["position", "pattern"],
        },
    ),
    migrations.CreateModel(
        name="PackRestore",
        fields=[
            (
                "id",
                models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
            ),
            ("requested", models.DateTimeField(default=django.utils.timezone.now)),
            ("requested_for", models.CharField(blank=True, max_length=300)),
            ("expected_ready", models.DateTimeField(blank=True, null=True)),
            (
                "state",
                models.CharField(
                    choices=[("restoring", "restoring"), ("ready", "readable")],
                    db_index=True,
                    default="restoring",
                    max_length=16,
                ),
            ),
            ("ready", models.DateTimeField(blank=True, null=True)),
            (
                "pack",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="restores", to="catalog.pack"
                ),
            ),
        ],
        options={
            "db_table": "catalog_packrestore",
            "ordering": ["-requested"],
        },
    ),
    migrations.CreateModel(
        name="RetentionRun",
        fields=[
            (
                "id",
                models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
            ),
            ("created", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ("as_of", models.DateTimeField()),
            ("trigger", models.CharField(default="manual", max_length=16)),
            (
                "state",
                models.CharField(
                    choices=[
                        ("planned", "planned (dry run)"),
                        ("awaiting", "waiting for an approver"),
                        ("approved", "approved, queued"),
                        ("applying", "applying"),
                        ("done", "done"),
                        ("cancelled", "cancelled"),
                        ("failed", "failed"),
                    ],
                    db_index=True,
                    default="planned",
                    max_length=16,
                ),
            ),
            ("state_changed", models.DateTimeField(default=django.utils.timezone.now)),
            ("phase", models.CharField(blank=True, max_length=16)),
            ("report", models.JSONField(default=dict)),
            ("actions", models.JSONField(default=dict)),
            ("sweep_bytes", models.BigIntegerField(default=0)),
            ("approver_name", models.CharField(blank=True, max_length=150)),
            ("progress", models.CharField(blank=True, max_length=300)),
            ("error", models.TextField(blank=True)),
            ("finished", models.DateTimeField(blank=True, null=True)),
            (
                "approved_by",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
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
        ],
        options={
            "db_table": "catalog_retentionrun",
            "ordering": ["-created"],
        },
    ),
]


def _move_content_types(apps, schema_editor):
    """Admin history and any permission rows follow the models to their new app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ["retentionpolicy", "retentionrun", "packrestore"]:
        ContentType.objects.filter(app_label="catalog", model=model).update(app_label="lifecycle")


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
