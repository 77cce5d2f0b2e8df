"""Where the apps built on the catalog plug into it.

The catalog sits below cards, lineage, registry, lifecycle, governance and ops,
and imports none of them (docs/design.md, "One direction of dependency"; the
import contract in pyproject.toml enforces it). What the catalog, or an app low
in the stack, must learn from an app above it is asked through the hooks here,
which the upper apps fill in their ``AppConfig.ready()``:

- ``protections``: why a version must be kept, and whether it must stay readable
  (invariant 5) — lineage names the runs that consumed it, the registry the
  model versions pinned to it, governance the rollbacks that target it.
  Retention asks them all before it expires or tiers anything.
- ``restored_packs``: which cold packs have been restored and can be read now
  (lifecycle tracks restores); the store's verification asks before it reads.
- ``restore_requested``: a cold pack a pull asked the store to restore, so that
  lifecycle can follow it until it is readable.
- ``version_read``: a version was read whole (a pull), so lifecycle can keep
  its data hot.
- ``transferred``: bytes moved to or from the object store, for the metrics.
- ``commit_guards``: may a commit move this branch? Asked before a writer stores
  anything and again as the version is committed; a guard refuses by raising a
  ``UserError`` (change requests refuse direct pushes to protected branches).
- ``committed``: a branch moved to a new version, called in the version's
  transaction (change requests follow the branches they merge).
- ``experiment_branches``: branches to retain as experiments whatever their
  names (the sources of change requests closed without merging), as
  (dataset name, branch) pairs; retention applies the ``exp/*`` policy to them.
- ``merged``: a merge version was made (the version, the target head, the source
  head, who asked, under what name), called in the version's transaction, so
  lineage records the merge as a run of the graph with the version, or neither.

A hook is a list of plain functions, called in the order they registered; none
may raise for anything but a bug. Nothing here is a signal: the flow stays
visible, one ``register`` per plug, one loop per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from strata_store.backends import RestoreState

if TYPE_CHECKING:  # the models import nothing of this module, but load after it
    from catalog.models import Dataset, Version
    from catalog.permissions import User

F = TypeVar("F", bound=Callable[..., object])


class Hook(Generic[F]):
    """An extension point: a named list of functions of one signature."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._functions: list[F] = []

    def register(self, function: F) -> F:
        """Add `function` (once, however often an app's ``ready()`` runs); usable as a decorator."""
        if function not in self._functions:
            self._functions.append(function)
        return function

    def __iter__(self) -> Iterator[F]:
        return iter(list(self._functions))

    def __repr__(self) -> str:
        return f"<Hook {self.name}: {len(self._functions)} registered>"


@dataclass(frozen=True)
class Protection:
    """A reason a version must be kept: shown on the cost page and in retention
    reports. `stay_readable` also keeps its data out of cold storage."""

    version_id: str
    reason: str
    stay_readable: bool = False


protections: Hook[Callable[[], Iterable[Protection]]] = Hook("protections")
restored_packs: Hook[Callable[[list[str]], set[str]]] = Hook("restored_packs")
restore_requested: Hook[Callable[[str, RestoreState, str], None]] = Hook("restore_requested")
version_read: Hook[Callable[[str], None]] = Hook("version_read")
transferred: Hook[Callable[[str, int], None]] = Hook("transferred")
commit_guards: Hook[Callable[[Dataset, str, str], None]] = Hook("commit_guards")
committed: Hook[Callable[[Version, str], None]] = Hook("committed")
experiment_branches: Hook[Callable[[], Iterable[tuple[str, str]]]] = Hook("experiment_branches")
merged: Hook[Callable[[Version, Version, Version, User, str], None]] = Hook("merged")


def protections_all() -> Iterator[Protection]:
    """Every protection every app knows of, in registration order."""
    for provider in protections:
        yield from provider()


def packs_restored(pack_ids: list[str]) -> set[str]:
    """The packs among `pack_ids` that some app says were restored and are readable."""
    found: set[str] = set()
    for provider in restored_packs:
        found |= provider(pack_ids)
    return found


def store_transferred(direction: str, nbytes: int) -> None:
    """Tell the observers that `nbytes` went `direction` ("push" or "pull")."""
    for observer in transferred:
        observer(direction, nbytes)


def commit_check(dataset: Dataset, branch: str, via: str) -> None:
    """Ask every guard whether a commit by `via` ("" for a direct one, else the
    service that commits: "change-request", "rollback") may move `branch`."""
    for guard in commit_guards:
        guard(dataset, branch, via)


def branches_as_experiments() -> set[tuple[str, str]]:
    """Every (dataset, branch) some app says is an experiment now."""
    found: set[tuple[str, str]] = set()
    for provider in experiment_branches:
        found |= set(provider())
    return found
