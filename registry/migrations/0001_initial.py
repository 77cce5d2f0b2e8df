import re

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# The tables lineage_modelversion and lineage_modelpin exist (lineage 0002): take them
# over, create nothing.
state_operations = [
    migrations.CreateModel(
        name="ModelVersion",
        fields=[
            (
                "node",
                models.OneToOneField(
                    on_delete=django.db.models.deletion.CASCADE,
                    primary_key=True,
                    related_name="model_version",
                    serialize=False,
                    to="lineage.node",
                ),
            ),
            (
                "name",
                models.CharField(
                    max_length=100,
                    validators=[
                        django.core.validators.RegexValidator(re.compile("^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"))
                    ],
                ),
            ),
            (
                "version",
                models.CharField(
                    max_length=64,
                    validators=[
                        django.core.validators.RegexValidator(
                            re.compile("^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
                        )
                    ],
                ),
            ),
            ("created", models.DateTimeField(default=django.utils.timezone.now)),
            ("metrics", models.JSONField(blank=True, default=dict)),
            ("params", models.JSONField(blank=True, default=dict)),
            ("code_repo", models.CharField(blank=True, max_length=500)),
            ("code_commit", models.CharField(blank=True, max_length=100)),
            ("artifact_uri", models.CharField(blank=True, max_length=1000)),
            ("description", models.TextField(blank=True)),
            ("actor", models.CharField(blank=True, max_length=150)),
            ("origin", models.CharField(default="api", max_length=16)),
            ("tolerance", models.FloatField(blank=True, null=True)),
            ("regressions", models.JSONField(blank=True, default=list)),
            (
                "predecessor",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to="registry.modelversion",
                ),
            ),
        ],
        options={
            "db_table": "lineage_modelversion",
            "ordering": ["name", "-created"],
        },
    ),
    migrations.CreateModel(
        name="ModelPin",
        fields=[
            (
                "id",
                models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
            ),
            (
                "role",
                models.CharField(
                    max_length=50,
                    validators=[
                        django.core.validators.RegexValidator(re.compile("^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$"))
                    ],
                ),
            ),
            ("requested", models.CharField(blank=True, max_length=400)),
            ("evaluation", models.BooleanField(default=False)),
            (
                "run",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="pins",
                    to="lineage.run",
                ),
            ),
            (
                "version",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="model_pins",
                    to="catalog.version",
                ),
            ),
            (
                "model",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="pins",
                    to="registry.modelversion",
                ),
            ),
        ],
        options={
            "db_table": "lineage_modelpin",
            "ordering": ["evaluation", "role"],
        },
    ),
    migrations.AddIndex(
        model_name="modelversion",
        index=models.Index(fields=["name", "-created"], name="lineage_model_name_created"),
    ),
    migrations.AddConstraint(
        model_name="modelversion",
        constraint=models.UniqueConstraint(fields=("name", "version"), name="lineage_model_version_unique"),
    ),
    migrations.AddConstraint(
        model_name="modelpin",
        constraint=models.UniqueConstraint(fields=("model", "role"), name="lineage_model_pin_role_unique"),
    ),
]


def _move_content_types(apps, schema_editor):
    """Admin history and any permission rows follow the models to their new app."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ["modelversion", "modelpin"]:
        ContentType.objects.filter(app_label="lineage", model=model).update(app_label="registry")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("catalog", "0010_models_move_to_their_apps"),
        ("lineage", "0003_models_move_to_registry"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations, database_operations=[]),
        migrations.RunPython(_move_content_types, migrations.RunPython.noop),
    ]
