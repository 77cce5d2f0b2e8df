"""The catalog's object model, after git's: datasets, immutable versions pointing at
content-addressed trees, movable branches and fixed tags; and below them the index of
the store (packs and the chunks inside them).

Content-addressed rows (Tree, FileManifest, Pack, Chunk) are named by the BLAKE3 hash
of their content and are only ever inserted, never updated in place. Rules about how
rows change live in ``catalog.services``; models hold fields and constraints.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

HASH_LENGTH = 64
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
REF_NAME_RE = re.compile(r"^(?!.*\.\.)(?!.*//)[A-Za-z0-9][A-Za-z0-9._/-]{0,199}(?<![/.])$")
SEMVER_RE = re.compile(r"^v?(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")


class Stage(models.TextChoices):
    RAW = "raw", "raw"
    CLEANED = "cleaned", "cleaned"
    LABELLED = "labelled", "labelled"
    SPLIT = "split", "split"
    OTHER = "other", "other"


class Keyword(models.Model):
    """A free tag on datasets, for search and filters ("nlp", "reviews", "pii")."""

    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Dataset(models.Model):
    """A named, versioned collection of files. Created by its first push.

    Public datasets are readable by every signed-in user; restricted ones only by
    their owners, members of their groups, and admins (``catalog.permissions``).
    """

    class Visibility(models.TextChoices):
        PUBLIC = "public", "public to all signed-in users"
        RESTRICTED = "restricted", "restricted to owners and groups"

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[RegexValidator(DATASET_NAME_RE)],
    )
    description = models.TextField(blank=True)
    default_branch = models.CharField(max_length=200, default="main")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="owned_datasets")
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="datasets")
    keywords = models.ManyToManyField(Keyword, blank=True, related_name="datasets")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tree(models.Model):
    """A folder listing in canonical form (see ``strata_store.tree``), stored
    zstd-compressed. Shared by every version that contains the same folder."""

    id = models.CharField(primary_key=True, max_length=HASH_LENGTH)
    data = models.BinaryField()
    entry_count = models.IntegerField()

    def __str__(self) -> str:
        return self.id[:12]


class FileManifest(models.Model):
    """The ordered chunk list of a file cut into more than one chunk. A file of a
    single chunk has no manifest: its digest is that chunk's id."""

    digest = models.CharField(primary_key=True, max_length=HASH_LENGTH)
    size = models.BigIntegerField()
    chunk_ids = models.BinaryField()  # concatenated 32-byte chunk ids, in order

    def chunk_list(self) -> list[str]:
        raw = bytes(self.chunk_ids)
        return [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


class DatasetFile(models.Model):
    """A file content (by digest) that some version of a dataset holds or held.

    This is what possession is checked against: a remote push may name stored
    content only if it sent the bytes itself or a dataset the pusher may read holds
    them (``catalog.services.remote.possession``). Rows are added by
    ``version_commit`` and never removed while the dataset exists: visibility is a
    property of the dataset, checked when the rows are read.
    """

    dataset = models.ForeignKey("Dataset", on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=HASH_LENGTH)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["digest", "dataset"], name="dataset_file_unique")]


class ManifestChunk(models.Model):
    """Which verified multi-chunk files hold a chunk: the reverse of
    ``FileManifest.chunk_ids``, so that "may this user read chunk C" is one indexed
    semi-join with ``DatasetFile`` instead of a walk of every tree."""

    chunk_id = models.CharField(max_length=HASH_LENGTH)
    digest = models.CharField(max_length=HASH_LENGTH)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chunk_id", "digest"], name="manifest_chunk_unique")]


class Pack(models.Model):
    """One pack object in the store: the unit written, tiered and collected."""

    class Tier(models.TextChoices):
        HOT = "hot", "hot"
        WARM = "warm", "warm"
        COLD = "cold", "cold"

    id = models.CharField(primary_key=True, max_length=HASH_LENGTH)
    size = models.BigIntegerField()
    chunk_count = models.IntegerField()
    created = models.DateTimeField(default=timezone.now)
    tier = models.CharField(max_length=8, choices=Tier.choices, default=Tier.HOT)
    # When the pack entered its tier: the minimum durations of warm and cold count from here.
    tier_since = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.id[:12]


class Chunk(models.Model):
    """Where a chunk's bytes are: pack, offset, stored length and codec."""

    id = models.CharField(primary_key=True, max_length=HASH_LENGTH)
    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="chunks")
    offset = models.BigIntegerField()
    stored_length = models.IntegerField()
    raw_length = models.IntegerField()
    codec = models.SmallIntegerField()


class Version(models.Model):
    """An immutable commit of a dataset: a root tree and everything said about it.

    Its id is the BLAKE3 hash of its dataset, tree, parents, author, message, time,
    semantic version and stage (and its card and code reference, when it has them),
    so a version cannot change without changing its name.
    """

    id = models.CharField(primary_key=True, max_length=HASH_LENGTH)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    # A merge's second parent: the head of the branch merged in (the first,
    # `parent`, is the head of the branch merged into).
    merge_parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merge_children"
    )
    tree = models.ForeignKey(Tree, on_delete=models.PROTECT, related_name="+")
    author = models.CharField(max_length=150)
    message = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    semver = models.CharField(max_length=40)
    semver_major = models.PositiveIntegerField()
    semver_minor = models.PositiveIntegerField()
    semver_patch = models.PositiveIntegerField()
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.RAW)
    file_count = models.PositiveIntegerField()
    logical_bytes = models.BigIntegerField()
    # What this version added to the store when it was pushed.
    new_bytes = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0)
    # Lifecycle flags: the only fields that change after creation, each through a
    # service that writes an audit event. They are not part of the version's id.
    golden = models.BooleanField(default=False, db_index=True)
    rolled_back = models.BooleanField(default=False)
    rolled_back_reason = models.TextField(blank=True)
    # Retention: when it was last pulled (throttled to once an hour), and when its
    # bytes were let go by policy. An expired version's history stays; its data is gone.
    last_accessed = models.DateTimeField(null=True, blank=True)
    expired = models.DateTimeField(null=True, blank=True)
    # The dataset card, carried forward from the parent until edited (cards.services.cards).
    card = models.ForeignKey(
        "CardDocument", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The code that made it, when the writer said: a git repository and a commit or
    # branch. Given to this version only, never carried forward from the parent.
    code_repo = models.CharField(max_length=500, blank=True, default="")
    code_ref = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["dataset", "semver"], name="version_semver_unique")]
        indexes = [models.Index(fields=["dataset", "-created"], name="version_dataset_created")]

    def __str__(self) -> str:
        return f"{self.dataset.name}@{self.semver}"

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def code(self) -> str:
        """The code reference as it is written: REPOSITORY#REF, or '' when none was given."""
        return f"{self.code_repo}#{self.code_ref}" if self.code_ref else self.code_repo


class Merge(models.Model):
    """A merge of one branch into another, asked for on the web or through the API.

    A merge of small files is worked out while the request waits; one that must
    read large tables runs in a worker, which records its progress and outcome
    here for the page to show. A dry run records its outcome (files, row changes,
    conflicts) and changes nothing; a merge that ends without conflicts (or with
    every conflict settled by its strategy) names the version it made.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"  # merged (a version), or a dry run worked out
        CONFLICTS = "conflicts", "conflicts"  # refused: nothing was written
        FAILED = "failed", "failed"

    id = models.CharField(primary_key=True, max_length=32)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="merges")
    source = models.CharField(max_length=200)
    target = models.CharField(max_length=200)
    # The heads seen when the merge was asked for: a merge never commits onto
    # another target head than the one it worked out.
    source_head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    target_head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    options = models.JSONField(default=dict)  # strategy, per-path strategies, key columns, message
    dry_run = models.BooleanField(default=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author = models.CharField(max_length=150)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    version = models.ForeignKey(Version, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"merge {self.source} into {self.target} of {self.dataset_id}"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.CONFLICTS, self.State.FAILED)


class Branch(models.Model):
    """A movable pointer to a version. Its head moves only by compare-and-swap."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="branches")
    name = models.CharField(max_length=200, validators=[RegexValidator(REF_NAME_RE)])
    head = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="branch_name_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.name}@{self.name}"


class Tag(models.Model):
    """A fixed name for a version."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=200, validators=[RegexValidator(REF_NAME_RE)])
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="tags")
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="tag_name_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.name}@{self.name}"


class AuditEvent(models.Model):
    """One change of state: who did what to which object, from what to what."""

    created = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_id}"


class ApiToken(models.Model):
    """A personal API token. Only a SHA-256 of the secret is stored; the secret is
    shown once, at creation. ``prefix`` (the first characters) identifies it in lists."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.user} {self.name} ({self.prefix}…)"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)


class Upload(models.Model):
    """A push from a remote client in progress: the session that ties together the
    chunk negotiation, the packs the client uploads and the file list it stages,
    until one commit turns it into a version.

    It exists so that the store's invariants hold across many HTTP requests: the
    packs it leases (``UploadLease``) are reachable for garbage collection until the
    upload expires or commits, and the staged file list (``UploadPart``) is invisible
    to everyone until the commit builds trees from it in one transaction.
    """

    id = models.CharField(primary_key=True, max_length=32)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    dataset_name = models.CharField(max_length=100)
    branch = models.CharField(max_length=200)
    created = models.DateTimeField(default=timezone.now)
    # Every call on the upload pushes this forward; garbage collection honours the
    # leases of uploads that have not expired.
    expires = models.DateTimeField(db_index=True)
    committed = models.ForeignKey(Version, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class State(models.TextChoices):
        OPEN = "open", "open"  # taking packs and file lists
        VERIFYING = "verifying", "verifying"  # committed by the client; a worker checks its bytes
        COMMITTED = "committed", "committed"
        FAILED = "failed", "failed"

    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    # The commit the client asked for (parent, message, stage, semver), kept while
    # a worker verifies; the answer it then gave (the API's commit body), or why
    # it refused, in words, with the kind of refusal (user, conflict, integrity).
    commit_request = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=16, blank=True)
    verify_started = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"upload {self.id} of {self.dataset_name} by {self.user}"


class PendingPack(models.Model):
    """A pack an upload's client sent and registered, not yet verified.

    Its chunks are in no shared index: nothing can deduplicate against them, read
    them or name them in a version until a worker has hashed every payload
    (``catalog.services.remote.verification``). `storage_id` is where the bytes
    are: the pack's own name, or a proof object of this upload when the store
    already held a pack of that name (the client proves it has the bytes by
    sending them; see docs/security.md). `index` is the pack's index and footer as
    read from the stored object at registration.
    """

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="pending_packs")
    pack_id = models.CharField(max_length=HASH_LENGTH, db_index=True)
    storage_id = models.CharField(max_length=HASH_LENGTH)
    size = models.BigIntegerField()
    index = models.BinaryField(null=True)  # None until the client registers it

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upload", "pack_id"], name="pending_pack_unique")]


class UploadLease(models.Model):
    """A pack that an upload relies on: one its client uploaded, or one holding
    chunks the client was told the store already has. Garbage collection must treat
    a leased pack of an unexpired upload as reachable; the foreign key is PROTECT so
    that a pack under a lease cannot be deleted by mistake."""

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="leases")
    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="+")
    uploaded = models.BooleanField(default=False)  # registered by this upload's client

    class Meta:
        constraints = [models.UniqueConstraint(fields=["upload", "pack"], name="upload_lease_unique")]


class UploadPart(models.Model):
    """One batch of the file list a client staged for its commit, stored
    zstd-compressed JSON. Parts keep each request small whatever the tree's size."""

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="parts")
    number = models.PositiveIntegerField()
    entry_count = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["upload", "number"], name="upload_part_unique")]


class IdempotencyKey(models.Model):
    """The answer given to a create request that carried an ``Idempotency-Key``, so
    that a client retrying after a lost response gets the same answer (the same
    version) instead of making the thing twice. Keys are per user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)  # method, path and body of the first request
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.user} {self.key}"


class CardDocument(models.Model):
    """The written part of a dataset card (``cards.domain.cards.Card.as_dict``), named by
    the BLAKE3 hash of its canonical JSON. Versions point at one; a version whose
    card is not edited shares its parent's document, so a card costs one row per
    edit, never one per version. Only ever inserted, never updated."""

    id = models.CharField(primary_key=True, max_length=HASH_LENGTH)
    content = models.JSONField()
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.id[:12]
