"""The lineage graph: nodes (sources, dataset versions, runs, model versions)
joined by edges.

The graph is stored as two narrow tables, ``Node`` and ``Edge``, so that a
bounded-depth walk touches only small rows and the (src, dst) / (dst, src)
indexes; what is said about each kind of node lives in a detail table keyed by
the node (``Source``, ``Run``). A dataset version's node points at its
``catalog.Version`` and carries the dataset, so visibility can be filtered in the
same query that walks the edges.

Adding a kind is one ``Node.Kind`` value and one detail table with a
``OneToOneField(Node, primary_key=True)``; the walk, the layout and the drawing
work on kinds as plain strings. Model versions were added that way
(``ModelVersion``), with ``ModelPin`` saying which exact dataset version each
one trained or was evaluated on, under which role.

Edges always join a run to something else: ``consumed`` (input → run) and
``produced`` (run → output). Which one an edge is follows from its ends, so it
is not stored twice.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Dataset, Version


class Node(models.Model):
    """One vertex of the lineage graph, whatever its kind.

    ``key`` is the node's natural identity (``version:<id>``, ``source:<digest>``,
    ``run:<origin>:<id>``): recording the same thing twice finds the same row,
    which is what makes re-sent OpenLineage events and re-imported DVC locks
    change nothing.
    """

    class Kind(models.TextChoices):
        SOURCE = "source", "source"
        VERSION = "version", "dataset version"
        RUN = "run", "run"
        MODEL = "model", "model version"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=255, unique=True)
    label = models.CharField(max_length=300)
    # SET_NULL: if retention ever deletes a version, its place in the graph (and
    # the runs around it) stays, labelled as it was.
    version = models.OneToOneField(
        Version, null=True, blank=True, on_delete=models.SET_NULL, related_name="lineage_node"
    )
    # Set for dataset versions (and later model versions of a dataset-less kind
    # leave it empty): lets the walk drop nodes a user may not read in SQL.
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["kind", "-created"], name="lineage_node_kind_created")]

    def __str__(self) -> str:
        return f"{self.kind} {self.label}"


class Edge(models.Model):
    """A directed edge: input → run (consumed) or run → output (produced).

    The unique (src, dst) index answers "what is downstream of these nodes" and
    the (dst, src) index "what is upstream", both as index-only scans.
    """

    src = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="out_edges")
    dst = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="in_edges")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["src", "dst"], name="lineage_edge_unique")]
        indexes = [models.Index(fields=["dst", "src"], name="lineage_edge_dst_src")]

    def __str__(self) -> str:
        return f"{self.src_id} -> {self.dst_id}"


class Source(models.Model):
    """External raw data: something Strata does not store but that runs read or
    write — a bucket prefix, a table, a URL, a DVC-tracked file.

    Identified by (namespace, name, version): OpenLineage's dataset identity plus
    its version facet, or for DVC the project, the path and the md5.
    """

    node = models.OneToOneField(Node, primary_key=True, on_delete=models.CASCADE, related_name="source")
    uri = models.CharField(max_length=1000)
    namespace = models.CharField(max_length=500, blank=True)
    name = models.CharField(max_length=1000, blank=True)
    version_tag = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    owner = models.CharField(max_length=150, blank=True)
    # Facets as sent (OpenLineage), kept whole, including ones Strata does not know.
    facets = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.uri


class StepKind(models.TextChoices):
    COLLECTION = "collection", "collection"
    CLEANING = "cleaning", "cleaning / filter"
    DEDUP = "dedup", "deduplication"
    ANNOTATION = "annotation", "annotation"
    SYNTHETIC = "synthetic", "synthetic generation"
    SPLIT = "split", "split"
    MERGE = "merge", "merge"
    TRAINING = "training", "training"
    EVALUATION = "evaluation", "evaluation"
    OTHER = "other", "other"


class RunStatus(models.TextChoices):
    RUNNING = "running", "running"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"
    ABORTED = "aborted", "aborted"
    UNKNOWN = "unknown", "unknown"


class Run(models.Model):
    """One execution of a lifecycle step: what ran, with which parameters and
    code, by whom, when, and how it ended. Its inputs and outputs are the node's
    edges.

    ``origin`` says where the record came from (api, cli, openlineage, dvc,
    dashboard); ``external_id`` is the id it had there (an OpenLineage runId),
    so later events about the same run update this row instead of adding one.
    """

    node = models.OneToOneField(Node, primary_key=True, on_delete=models.CASCADE, related_name="run")
    step = models.CharField(max_length=16, choices=StepKind.choices, default=StepKind.OTHER)
    name = models.CharField(max_length=300)
    namespace = models.CharField(max_length=500, blank=True)
    params = models.JSONField(default=dict, blank=True)
    code_repo = models.CharField(max_length=500, blank=True)
    code_commit = models.CharField(max_length=100, blank=True)
    command = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.COMPLETED)
    origin = models.CharField(max_length=16, default="api")
    external_id = models.CharField(max_length=200, blank=True)
    producer = models.CharField(max_length=500, blank=True)
    # Run and job facets as sent (OpenLineage), kept whole.
    facets = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["namespace", "name"], name="lineage_run_job")]

    def __str__(self) -> str:
        return self.name

    @property
    def code_ref(self) -> str:
        if self.code_repo and self.code_commit:
            return f"{self.code_repo}#{self.code_commit}"
        return self.code_repo or self.code_commit


class IngestedEvent(models.Model):
    """The digest of every OpenLineage event taken in, so a re-sent event is
    recognised and changes nothing (producers retry on timeouts)."""

    digest = models.CharField(primary_key=True, max_length=64)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=16, blank=True)
    event_time = models.DateTimeField(null=True, blank=True)
    received = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.digest[:12]
