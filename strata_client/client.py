"""The Python client: push a folder as a version, pull a version into a folder,
resolve a ref — against a Strata server's REST API, with no Django.

Pushing chunks and packs files here, with the store's own code (``strata_store``),
so only chunks the server lacks travel, straight to the object store through the
URLs the server signs; the web server sees ids and file lists. Pulling fetches only
the byte ranges of packs that the version's chunks occupy, verifies every chunk by
its hash and every file by its digest, and writes nothing into DEST until all of it
has been checked.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from strata_client import http
from strata_client.errors import ClientError, MergeConflict, TransferError
from strata_client.errors import Conflict as ConflictError
from strata_client.errors import NotFound as NotFoundError
from strata_client.pull import PullJob, PullResult
from strata_client.push import PushResult, PushSession
from strata_client.scan import Scan, scan, scan_fingerprint
from strata_store.statcache import StatCache
from strata_store.store import ProgressSink


def split_ref(spec: str) -> tuple[str, str | None]:
    """'reviews@1.2.0' -> ('reviews', '1.2.0'); 'reviews' -> ('reviews', None)."""
    name, sep, ref = spec.partition("@")
    if not name:
        raise ClientError(f"{spec!r} names no dataset: use DATASET[@REF].")
    if sep and not ref:
        raise ClientError(f"{spec!r} names no ref after '@': use DATASET@REF.")
    return name, (ref if sep else None)


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("STRATA_CLIENT_CACHE") or os.path.join(base, "strata-client")


class Client:
    """A Strata server, as the user a personal API token belongs to."""

    def __init__(self, url: str, token: str, *, cache_dir: str | None = None, timeout: float = 120.0) -> None:
        if not token:
            raise ClientError("an API token is needed: create one on your account's token page.")
        self.transport = http.Transport(url, token, timeout=timeout)
        self.cache_dir = cache_dir or default_cache_dir()

    # -- reading ------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The id of the version `DATASET[@REF]` names (a branch, tag, semantic
        version or id prefix; the default branch's head without one)."""
        return self._resolve(ref)["id"]

    def _resolve(self, ref: str) -> dict[str, Any]:
        dataset, name = split_ref(ref)
        _, version = self.transport.call("GET", f"/datasets/{dataset}/resolve", params={"ref": name})
        return version

    # -- pushing ------------------------------------------------------------------------

    def push(
        self,
        path: str,
        dataset: str,
        *,
        branch: str | None = None,
        message: str = "",
        stage: str | None = None,
        semver: str | None = None,
        progress: ProgressSink | None = None,
        code: str = "",
    ) -> PushResult:
        """Store the file or folder `path` as a new version of `dataset`.

        Creates the dataset on its first push. Only chunks the server lacks are
        uploaded; a push of unchanged content uploads nothing and makes no version.
        `code` names the code that made the data, ``REPOSITORY#COMMIT`` (or
        ``#BRANCH``); the new version carries it.
        """
        scanned = scan(path)
        fingerprint = scan_fingerprint(scanned)
        os.makedirs(self.cache_dir, exist_ok=True)
        cache = StatCache(os.path.join(self.cache_dir, "stat.sqlite3"))
        try:
            unchanged = self._unchanged(cache, scanned, fingerprint, dataset, branch)
            if unchanged is not None:
                return unchanged
            _, upload = self.transport.call(
                "POST",
                f"/datasets/{dataset}/uploads",
                body={"branch": branch} if branch else {},
                headers={"Idempotency-Key": uuid.uuid4().hex},
                retry=True,
            )
            session = PushSession(self.transport, upload, cache, progress)
            result = session.run(scanned, dataset, message=message, stage=stage, semver=semver, code=code)
            if all(cache.is_settled(f.stat) for f in scanned.files):
                cache.record_snapshot(scanned.root, fingerprint, session.tree)
            return result
        finally:
            cache.close()

    def _unchanged(
        self, cache: StatCache, scanned: Scan, fingerprint: str, dataset: str, branch: str | None
    ) -> PushResult | None:
        """The branch head, if this exact folder was pushed before and the branch still
        holds its tree: then nothing needs reading, asking or sending."""
        tree = cache.snapshot_tree(scanned.root, fingerprint)
        if tree is None:
            return None
        try:
            _, branches = self.transport.call("GET", f"/datasets/{dataset}/branches")
        except NotFoundError:
            return None
        found = next((b for b in branches if (b["name"] == branch if branch else b["default"])), None)
        if found is None or found["tree"] != tree:
            return None
        _, head = self.transport.call("GET", f"/datasets/{dataset}/versions/{found['head']}")
        return PushResult(
            dataset=dataset,
            branch=found["name"],
            version=head["id"],
            semver=head["semver"],
            created=False,
            file_count=head["file_count"],
            logical_bytes=head["logical_bytes"],
            new_bytes=0,
            uploaded_packs=0,
            uploaded_bytes=0,
        )

    # -- merging ------------------------------------------------------------------------

    def merge(
        self,
        dataset: str,
        source: str,
        *,
        into: str | None = None,
        strategy: str | None = None,
        path_strategies: dict[str, str] | None = None,
        key: str | None = None,
        keys: dict[str, str] | None = None,
        message: str = "",
        dry_run: bool = False,
        wait: float = 3600.0,
        poll: float = 1.0,
    ) -> dict[str, Any]:
        """Merge branch `source` of `dataset` into `into` (the default branch).

        Returns the merge (``state``, the ``version`` it made, and in ``result``
        the files taken, the rows merged and, for a dry run, the conflicts). A
        merge the server hands to a worker is waited for, up to `wait` seconds.
        Raises ``MergeConflict`` (its ``merge`` lists every conflict by key and
        column) when the merge cannot be made as asked: nothing was merged.
        """
        body: dict[str, Any] = {"source": source, "message": message, "dry_run": dry_run}
        if into:
            body["into"] = into
        if strategy:
            body["strategy"] = strategy
        if path_strategies:
            body["path_strategies"] = path_strategies
        if key:
            body["key"] = key
        if keys:
            body["keys"] = keys
        _, merge = self.transport.call("POST", f"/datasets/{dataset}/merges", body=body)
        deadline = time.monotonic() + wait
        while merge["state"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise TransferError(
                    f"the merge {merge['id']} is still {merge['state']} after {wait:.0f} s;"
                    f" ask for it at /datasets/{dataset}/merges/{merge['id']}."
                )
            time.sleep(poll)
            _, merge = self.transport.call("GET", f"/datasets/{dataset}/merges/{merge['id']}")
        if merge["state"] == "conflicts" and not merge["dry_run"]:
            count = (merge.get("result") or {}).get("conflict_count", 0)
            error = MergeConflict(f"the merge has {count} conflicts; nothing was merged.")
            error.answer = merge
            raise error
        if merge["state"] == "failed":
            raise ConflictError(merge.get("error") or "the merge failed; nothing was merged.")
        return merge

    # -- change requests -----------------------------------------------------------------

    def open_change(
        self,
        dataset: str,
        source: str,
        *,
        into: str | None = None,
        title: str = "",
        description: str = "",
        code_repo: str = "",
        code_ref: str = "",
    ) -> dict[str, Any]:
        """Propose merging branch `source` of `dataset` into `into`; returns the
        change request (its ``id``, ``head``, ``checks``, ``blockers``…)."""
        body: dict[str, Any] = {
            "source": source,
            "title": title,
            "description": description,
            "code_repo": code_repo,
            "code_ref": code_ref,
        }
        if into:
            body["into"] = into
        _, change = self.transport.call("POST", f"/datasets/{dataset}/changes", body=body)
        return change

    def change(self, number: int) -> dict[str, Any]:
        """A change request: its state, head, checks, approvals and whether it may merge."""
        _, change = self.transport.call("GET", f"/changes/{int(number)}")
        return change

    def report_check(
        self,
        number: int,
        name: str,
        state: str,
        *,
        summary: str = "",
        metrics: dict[str, float] | None = None,
        url: str = "",
        head: str | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """Report what a pipeline found about change request `number`'s head:
        `state` is pending, running, passed or failed; `metrics` (name -> number)
        go through the metric gate against the models trained on the target.
        Give `head`, the version id the pipeline ran on, so a report about an
        older head is refused rather than counted for a newer push."""
        body: dict[str, Any] = {"name": name, "state": state, "summary": summary, "metrics": metrics or {}}
        if url:
            body["url"] = url
        if head:
            body["head"] = head
        if model:
            body["model"] = model
        _, check = self.transport.call("POST", f"/changes/{int(number)}/checks", body=body)
        return check

    def changes(self, dataset: str, state: str = "open") -> list[dict[str, Any]]:
        """The change requests of `dataset` in one state (open, merging, merged,
        closed, or all), newest first."""
        _, found = self.transport.call("GET", f"/datasets/{dataset}/changes", params={"state": state})
        return found

    def approve(self, number: int, comment: str = "") -> dict[str, Any]:
        """Approve change request `number`'s current head (an approver's token; the
        author cannot approve their own). Returns the change request."""
        body = {"comment": comment}
        _, change = self.transport.call("POST", f"/changes/{int(number)}/approvals", body=body)
        return change

    def merge_change(self, number: int) -> dict[str, Any]:
        """Ask the server to merge change request `number` (a steward's token). A
        worker merges it: the answer is ``merging``; read ``change(number)`` until
        it is ``merged`` (with its ``merged_version``) or back to ``open`` with an
        ``error``. Refused (``Conflict``) while its ``blockers`` are not empty."""
        _, change = self.transport.call("POST", f"/changes/{int(number)}/merge", body={})
        return change

    # -- pulling ------------------------------------------------------------------------

    def pull(
        self, ref: str, dest: str, *, force: bool = False, progress: ProgressSink | None = None
    ) -> PullResult:
        """Write exactly the version `DATASET[@REF]` names into `dest`, verified, or
        nothing at all."""
        dataset, _ = split_ref(ref)
        version = self._resolve(ref)
        return PullJob(self.transport, dataset, version, progress).run(dest, force)
