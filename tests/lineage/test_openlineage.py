"""OpenLineage events in, shaped as Airflow, Spark and dbt emit them (spec 2-0-2).

The events follow the spec and the producers' documented output: Airflow task
events with the `airflow`, `nominalTime`, `parent` and `processing_engine` run
facets; Spark events with `spark_properties`, a `spark.logicalPlan` facet Strata
does not know, a RUNNING event and a Delta table version facet; dbt model events
with the `sql` and `sourceCodeLocation` job facets and a FAIL.
"""

from __future__ import annotations

import copy
import json

import pytest

from catalog.models import AuditEvent
from catalog.services.tokens import token_create
from lineage.models import Edge, IngestedEvent, Node, Run, Source

SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
AIRFLOW = "https://github.com/apache/airflow/tree/providers-openlineage/1.8.0"
SPARK = "https://github.com/OpenLineage/OpenLineage/tree/1.19.0/integration/spark"
DBT = "https://github.com/OpenLineage/OpenLineage/tree/1.19.0/integration/dbt"
AIRFLOW_RUN = "0190f1a2-6b3c-7a4e-9d1e-3c5a7b9e0f11"
SPARK_RUN = "0190f1a3-0000-7bbb-8ccc-1d2e3f4a5b6c"
DBT_RUN = "0190f1a4-1111-7ddd-8eee-2f3a4b5c6d7e"
DBT_FAILED_RUN = "0190f1a4-2222-7ddd-8eee-2f3a4b5c6d7e"


def facet(schema: str, producer: str, /, **fields) -> dict:
    return {
        "_producer": producer,
        "_schemaURL": f"https://openlineage.io/spec/facets/1-0-0/{schema}.json",
        **fields,
    }


def postgres_table(name: str) -> dict:
    return {
        "namespace": "postgres://db.example.org:5432",
        "name": name,
        "facets": {
            "dataSource": facet(
                "DatasourceDatasetFacet",
                AIRFLOW,
                name="postgres://db.example.org:5432",
                uri="postgres://db.example.org:5432",
            ),
            "schema": facet(
                "SchemaDatasetFacet",
                AIRFLOW,
                fields=[{"name": "id", "type": "integer"}, {"name": "text", "type": "text"}],
            ),
        },
    }


def airflow_events() -> list[dict]:
    run_facets = {
        "airflow": facet(
            "AirflowRunFacet",
            AIRFLOW,
            dag={"dag_id": "reviews_pipeline", "schedule_interval": "@daily"},
            dagRun={"run_id": "scheduled__2024-06-01T00:00:00+00:00"},
            task={"task_id": "extract", "operator_class": "SQLExecuteQueryOperator"},
            taskInstance={"try_number": 1},
        ),
        "nominalTime": facet("NominalTimeRunFacet", AIRFLOW, nominalStartTime="2024-06-01T00:00:00Z"),
        "parent": facet(
            "ParentRunFacet",
            AIRFLOW,
            run={"runId": "0190f1a2-0000-7000-8000-000000000001"},
            job={"namespace": "airflow-prod", "name": "reviews_pipeline"},
        ),
        "processing_engine": facet("ProcessingEngineRunFacet", AIRFLOW, version="2.9.2", name="Airflow"),
    }
    job = {
        "namespace": "airflow-prod",
        "name": "reviews_pipeline.extract",
        "facets": {
            "jobType": facet(
                "JobTypeJobFacet", AIRFLOW, processingType="BATCH", integration="AIRFLOW", jobType="TASK"
            ),
            "ownership": facet("OwnershipJobFacet", AIRFLOW, owners=[{"name": "data-eng", "type": "team"}]),
        },
    }
    start = {
        "eventType": "START",
        "eventTime": "2024-06-01T00:00:05.120Z",
        "producer": AIRFLOW,
        "schemaURL": SCHEMA,
        "run": {"runId": AIRFLOW_RUN, "facets": run_facets},
        "job": job,
        "inputs": [postgres_table("reviews.public.raw_reviews")],
        "outputs": [],
    }
    complete = copy.deepcopy(start)
    complete.update(
        eventType="COMPLETE",
        eventTime="2024-06-01T00:03:41.004Z",
        outputs=[
            {"namespace": "s3://lake", "name": "reviews/extract/2024-06-01", "facets": {}},
            {
                "namespace": "strata",
                "name": "reviews-raw",
                "facets": {"version": facet("DatasetVersionDatasetFacet", AIRFLOW, datasetVersion="1.0.0")},
            },
        ],
    )
    return [start, complete]


def spark_events() -> list[dict]:
    base = {
        "producer": SPARK,
        "schemaURL": SCHEMA,
        "run": {
            "runId": SPARK_RUN,
            "facets": {
                "parent": facet(
                    "ParentRunFacet",
                    SPARK,
                    run={"runId": AIRFLOW_RUN},
                    job={"namespace": "airflow-prod", "name": "reviews_pipeline.clean"},
                ),
                "spark_properties": facet(
                    "SparkPropertiesFacet",
                    SPARK,
                    properties={"spark.master": "local[2]", "spark.app.name": "reviews_clean"},
                ),
                "processing_engine": facet("ProcessingEngineRunFacet", SPARK, version="3.5.1", name="spark"),
            },
        },
        "job": {
            "namespace": "spark-prod",
            "name": "reviews_clean.execute_insert_into_hadoop_fs_relation_command.lake_reviews_clean",
            "facets": {
                "jobType": facet(
                    "JobTypeJobFacet", SPARK, processingType="BATCH", integration="SPARK", jobType="SQL_JOB"
                )
            },
        },
    }
    start = {
        **copy.deepcopy(base),
        "eventType": "START",
        "eventTime": "2024-06-01T00:05:00.000Z",
        "inputs": [],
        "outputs": [],
    }
    running = {**copy.deepcopy(base), "eventType": "RUNNING", "eventTime": "2024-06-01T00:06:00.000Z"}
    running["run"]["facets"]["spark.logicalPlan"] = facet(
        "LogicalPlanFacet",
        SPARK,
        plan=[{"class": "org.apache.spark.sql.catalyst.plans.logical.Filter", "num-children": 1}],
    )
    complete = {
        **copy.deepcopy(base),
        "eventType": "COMPLETE",
        "eventTime": "2024-06-01T00:09:30.500Z",
        "inputs": [
            {
                "namespace": "s3://lake",
                "name": "reviews/extract/2024-06-01",
                "facets": {
                    "schema": facet("SchemaDatasetFacet", SPARK, fields=[{"name": "text", "type": "string"}])
                },
                "inputFacets": {},
            }
        ],
        "outputs": [
            {
                "namespace": "s3://lake",
                "name": "reviews/clean",
                "facets": {
                    "version": facet("DatasetVersionDatasetFacet", SPARK, datasetVersion="3"),
                    "lifecycleStateChange": facet(
                        "LifecycleStateChangeDatasetFacet", SPARK, lifecycleStateChange="OVERWRITE"
                    ),
                },
                "outputFacets": {
                    "outputStatistics": facet(
                        "OutputStatisticsOutputDatasetFacet", SPARK, rowCount=48211, size=9311820
                    )
                },
            }
        ],
    }
    return [start, running, complete]


def dbt_events() -> list[dict]:
    job = {
        "namespace": "dbt",
        "name": "analytics.reviews.stg_reviews",
        "facets": {
            "sql": facet(
                "SQLJobFacet", DBT, query="select id, lower(text) as text from raw_reviews where lang = 'en'"
            ),
            "jobType": facet(
                "JobTypeJobFacet", DBT, processingType="BATCH", integration="DBT", jobType="MODEL"
            ),
            "sourceCodeLocation": facet(
                "SourceCodeLocationJobFacet",
                DBT,
                type="git",
                url="https://git.example.org/analytics/dbt/blob/main/models/stg_reviews.sql",
                repoUrl="https://git.example.org/analytics/dbt.git",
                path="models/stg_reviews.sql",
                version="4b1e6c2",
            ),
        },
    }
    run_facets = {
        "dbt_version": facet("DbtVersionRunFacet", DBT, version="1.8.2"),
        "dbt_run": facet("DbtRunRunFacet", DBT, invocation_id="8c814240-637d-4a36-937e-43787f5c79e0"),
    }
    io = {
        "inputs": [postgres_table("reviews.public.raw_reviews")],
        "outputs": [postgres_table("reviews.analytics.stg_reviews")],
    }
    start = {
        "eventType": "START",
        "eventTime": "2024-06-01T01:00:00Z",
        "producer": DBT,
        "schemaURL": SCHEMA,
        "run": {"runId": DBT_RUN, "facets": run_facets},
        "job": job,
        **io,
    }
    complete = {**copy.deepcopy(start), "eventType": "COMPLETE", "eventTime": "2024-06-01T01:00:12Z"}
    failed_start = {
        **copy.deepcopy(start),
        "eventTime": "2024-06-02T01:00:00Z",
        "run": {"runId": DBT_FAILED_RUN, "facets": run_facets},
    }
    failed = {
        **copy.deepcopy(failed_start),
        "eventType": "FAIL",
        "eventTime": "2024-06-02T01:00:03Z",
        "run": {
            "runId": DBT_FAILED_RUN,
            "facets": {
                **run_facets,
                "errorMessage": facet(
                    "ErrorMessageRunFacet",
                    DBT,
                    message="relation raw_reviews does not exist",
                    programmingLanguage="sql",
                ),
            },
        },
    }
    return [start, complete, failed_start, failed]


@pytest.fixture
def send(client, personas):
    _, secret = token_create(user=personas["alice"], name="openlineage")

    def post(event, raw: bytes | None = None):
        body = raw if raw is not None else json.dumps(event)
        return client.post(
            "/api/v1/lineage", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
        )

    return post


def snapshot():
    return (
        sorted(Node.objects.values_list("kind", "key", "label")),
        sorted(Edge.objects.values_list("src__key", "dst__key")),
        sorted(Run.objects.values_list("external_id", "status", "started", "ended")),
        sorted((s.uri, json.dumps(s.facets, sort_keys=True)) for s in Source.objects.all()),
        AuditEvent.objects.count(),
    )


def test_airflow_spark_and_dbt_events_give_the_expected_graph(send, make_version):
    raw = make_version("reviews-raw")
    events = airflow_events() + spark_events() + dbt_events()
    for event in events:
        response = send(event)
        assert response.status_code in (200, 201), response.content
    assert Run.objects.count() == 4
    extract = Run.objects.get(external_id=AIRFLOW_RUN)
    assert extract.name == "reviews_pipeline.extract" and extract.namespace == "airflow-prod"
    assert extract.status == "completed" and extract.actor == "data-eng"
    assert extract.started.isoformat() == "2024-06-01T00:00:05.120000+00:00"
    assert extract.ended.isoformat() == "2024-06-01T00:03:41.004000+00:00"
    assert extract.facets["run"]["airflow"]["task"]["task_id"] == "extract"

    spark = Run.objects.get(external_id=SPARK_RUN)
    assert spark.status == "completed" and spark.facets["_events"] == ["COMPLETE", "RUNNING", "START"]
    # A facet Strata knows nothing about is kept as sent.
    assert spark.facets["run"]["spark.logicalPlan"]["plan"][0]["num-children"] == 1

    dbt = Run.objects.get(external_id=DBT_RUN)
    assert dbt.code_repo == "https://git.example.org/analytics/dbt.git" and dbt.code_commit == "4b1e6c2"
    assert dbt.command.startswith("select id") and dbt.status == "completed"
    failed = Run.objects.get(external_id=DBT_FAILED_RUN)
    assert failed.status == "failed" and "does not exist" in failed.facets["run"]["errorMessage"]["message"]

    def key_of(namespace, name, version=""):
        from lineage.services.runs import source_key

        return source_key(namespace, name, version)

    def run_key(run_id):
        return f"run:openlineage:{run_id}"

    edges = set(Edge.objects.values_list("src__key", "dst__key"))
    raw_table = key_of("postgres://db.example.org:5432", "reviews.public.raw_reviews")
    extract_out = key_of("s3://lake", "reviews/extract/2024-06-01")
    assert {
        (raw_table, run_key(AIRFLOW_RUN)),
        (run_key(AIRFLOW_RUN), extract_out),
        # The strata dataset in the event is the catalog version, not a source.
        (run_key(AIRFLOW_RUN), f"version:{raw.id}"),
        # Spark read what Airflow wrote: one node, so the graph connects.
        (extract_out, run_key(SPARK_RUN)),
        (run_key(SPARK_RUN), key_of("s3://lake", "reviews/clean", "3")),
        (raw_table, run_key(DBT_RUN)),
        (run_key(DBT_RUN), key_of("postgres://db.example.org:5432", "reviews.analytics.stg_reviews")),
        (raw_table, run_key(DBT_FAILED_RUN)),
        (run_key(DBT_FAILED_RUN), key_of("postgres://db.example.org:5432", "reviews.analytics.stg_reviews")),
    } == edges
    clean = Source.objects.get(node__key=key_of("s3://lake", "reviews/clean", "3"))
    assert clean.version_tag == "3" and clean.facets["outputFacets"]["outputStatistics"]["rowCount"] == 48211
    assert Node.objects.filter(kind="source").count() == 4


def test_re_sent_events_change_nothing(send, make_version):
    make_version("reviews-raw")
    events = airflow_events() + spark_events() + dbt_events()
    for event in events:
        send(event)
    before = snapshot()
    for event in events:
        response = send(event)
        assert response.status_code == 200 and response.json()["duplicate"] is True
    assert snapshot() == before
    assert IngestedEvent.objects.count() == len(events)


def test_events_arriving_out_of_order_end_in_the_same_run(send):
    start, complete = airflow_events()
    complete["outputs"] = complete["outputs"][:1]
    assert send(complete).status_code == 201
    assert send(start).status_code == 200
    run = Run.objects.get()
    assert run.status == "completed"
    assert run.started.isoformat().startswith("2024-06-01T00:00:05")
    assert run.ended.isoformat().startswith("2024-06-01T00:03:41")


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda e: e["run"].pop("runId"), "run.runId is missing"),
        (lambda e: e["run"].update(runId=42), "run.runId must be a non-empty string"),
        (
            lambda e: e.update(eventTime="yesterday at noon"),
            "eventTime 'yesterday at noon' is not an ISO 8601",
        ),
        (lambda e: e.update(eventTime="2024-13-45T99:00:00Z"), "is not an ISO 8601 date-time"),
        (lambda e: e.pop("eventTime"), "eventTime is missing"),
        (lambda e: e.update(eventTime=1717200000), "eventTime must be an ISO 8601"),
        (lambda e: e.update(eventType="DONE"), "eventType must be one of START, RUNNING, COMPLETE"),
        (lambda e: e.update(inputs={"namespace": "x", "name": "y"}), "inputs must be a list"),
        (lambda e: e["inputs"].append({"namespace": "x"}), r"inputs\[1\].name is missing"),
        (lambda e: e["job"].update(name=["a"]), "job.name must be a non-empty string"),
        (lambda e: e.update(job="reviews"), "job must be a JSON object"),
        (lambda e: e.update(run="0190"), "run must be a JSON object"),
        (lambda e: e["run"].update(facets=[1, 2]), "run.facets must be a JSON object"),
        (lambda e: e.update(producer=7), "producer must be a string"),
    ],
)
def test_a_malformed_event_gets_400_with_the_reason(send, mutate, reason):
    import re

    event = airflow_events()[0]
    mutate(event)
    response = send(event)
    assert response.status_code == 400, response.content
    assert re.search(reason, response.json()["error"]), response.json()
    assert not Run.objects.exists() and not IngestedEvent.objects.exists()


def test_bodies_that_are_not_events_get_400(send):
    for raw, reason in [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "the event must be a JSON object"),
        (b'{"eventTime": "2024-06-01T00:00:00Z"}', "needs run"),
    ]:
        response = send(None, raw=raw)
        assert response.status_code == 400 and reason in response.json()["error"], response.content


def test_unexpected_but_valid_shapes_are_accepted(send):
    minimal = {
        "eventTime": "2024-06-01T00:00:00+02:00",
        "run": {"runId": "not-a-uuid-but-unique", "facets": None},
        "job": {"namespace": "cron", "name": "nightly", "facets": None},
        "inputs": None,
        "producer": "https://example.org/home-made",
        "someFutureField": {"nested": [1, 2, 3]},
    }
    response = send(minimal)
    assert response.status_code == 201, response.content
    run = Run.objects.get(external_id="not-a-uuid-but-unique")
    assert run.status == "unknown"
    odd = {
        "eventType": "other",
        "eventTime": "2024-06-01T00:00:01Z",
        "run": {"runId": "not-a-uuid-but-unique"},
        "job": {"namespace": "cron", "name": "nightly"},
        "outputs": [
            {"namespace": "strata", "name": "no-such-dataset", "facets": {"version": {"datasetVersion": 7}}},
            {
                "namespace": "file",
                "name": "/tmp/out",
                "facets": {"version": "not an object", "weird": [None]},
            },
        ],
    }
    assert send(odd).status_code == 200
    # A strata name that does not resolve stays a source; nothing was refused.
    assert Source.objects.filter(namespace="strata", name="no-such-dataset", version_tag="7").exists()
    dataset_event = {
        "eventTime": "2024-06-01T00:00:00Z",
        "producer": AIRFLOW,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {
            "namespace": "s3://lake",
            "name": "reviews/static",
            "facets": {"documentation": {"description": "Static reviews dump"}},
        },
    }
    response = send(dataset_event)
    assert response.status_code == 200 and response.json()["event"] == "dataset"
    assert Source.objects.get(name="reviews/static").description == "Static reviews dump"
    job_event = {
        "eventTime": "2024-06-01T00:00:00Z",
        "producer": AIRFLOW,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "airflow-prod", "name": "reviews_pipeline.load"},
        "inputs": [{"namespace": "s3://lake", "name": "reviews/clean"}],
        "outputs": [],
    }
    response = send(job_event)
    assert response.status_code == 200 and response.json()["event"] == "job"
    assert send(job_event).json()["duplicate"] is True


def test_only_stewards_send_events(client, personas):
    _, secret = token_create(user=personas["bob"], name="viewer")
    response = client.post(
        "/api/v1/lineage",
        json.dumps(airflow_events()[0]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 403 and "steward" in response.json()["error"]
    response = client.post(
        "/api/v1/lineage", json.dumps(airflow_events()[0]), content_type="application/json"
    )
    assert response.status_code == 401


def test_a_strata_dataset_the_sender_cannot_see_stays_a_source(client, personas, make_version):
    from django.contrib.auth.models import Group, User

    from catalog.models import Dataset
    from catalog.services.datasets import dataset_update

    make_version("secret")
    dataset_update(
        user=personas["alice"], dataset=Dataset.objects.get(name="secret"), visibility="restricted"
    )
    frank = User.objects.create_user("frank", "frank@example.org", "frank-password")
    frank.groups.add(Group.objects.get(name="steward"))
    _, secret = token_create(user=frank, name="airflow")
    event = airflow_events()[1]
    event["outputs"] = [{"namespace": "strata", "name": "secret@1.0.0"}]
    response = client.post(
        "/api/v1/lineage",
        json.dumps(event),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert response.status_code == 201
    assert not Node.objects.filter(kind="version").exists()
    assert Source.objects.filter(namespace="strata", name="secret@1.0.0").exists()


def _nested(depth: int) -> dict:
    value: dict = {"leaf": "x" * 10}
    for _ in range(depth):
        value = {"child": value}
    return value


def test_an_event_nesting_past_the_limit_is_refused_with_one_sentence_and_nothing_recorded(send):
    event = airflow_events()[0]
    event["run"]["facets"]["deep"] = _nested(200)
    response = send(event)
    assert response.status_code == 400
    assert response.json() == {"error": "the event nests deeper than 32 levels; flatten its facets."}
    assert not Run.objects.exists() and not IngestedEvent.objects.exists()
    far_too_deep = b'{"run": ' * 5000 + b"{}" + b"}" * 5000
    assert send(None, raw=far_too_deep).status_code == 400


def test_a_facet_past_the_size_limit_is_refused_by_name(send):
    event = airflow_events()[0]
    event["run"]["facets"]["plan"] = {"text": "x" * (1024 * 1024 + 1)}
    response = send(event)
    assert response.status_code == 400 and "run.facets.plan is" in response.json()["error"]
    assert not Run.objects.exists()


def test_the_run_page_shows_each_facet_folded_and_bounded(client, personas, send):
    event = airflow_events()[0]
    event["run"]["facets"]["deep"] = _nested(25)
    event["run"]["facets"]["plan"] = {"text": "y" * 900_000}
    assert send(event).status_code == 201
    run = Run.objects.get()
    client.force_login(personas["bob"])
    page = client.get(f"/lineage/nodes/{run.node_id}/").content.decode()
    assert len(page) < 400_000
    assert "<summary>run.plan</summary>" in page and "<summary>run.deep</summary>" in page
    assert "the API has the whole facet" in page
