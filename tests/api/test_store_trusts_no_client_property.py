"""A property of the push protocol: whatever mix of honest and forged pushes users
of different visibility make, every file of every version pulls back byte-identical
to what its pusher had, and no one reads a byte of a dataset they cannot read.

Two stewards push from a shared pool of contents (so dedup across them is real):
alice into her restricted dataset, mallory into her own. Some pushes are forged: a
pack whose payload is not its claimed chunk, a file list naming a digest with
someone else's chunks, or a file named by a digest its pusher never had. The
in-process API runs the worker's verification in place (see conftest.py)."""

from __future__ import annotations

import itertools
import random

import pytest
from django.contrib.auth.models import Group, User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import Dataset, Version
from catalog.services.tokens import token_create
from catalog.store import walk_tree
from strata_store.hashing import digest_hex
from tests.factories.api import Api
from tests.factories.forgery import Push, chunked

SIZES = [3_000, 20_000, 120_000, 9_000]
_runs = itertools.count()

push_step = st.tuples(
    st.sampled_from(["alice", "mallory"]),
    st.lists(st.integers(0, len(SIZES) - 1), min_size=1, max_size=3, unique=True),
    st.sampled_from(["honest", "honest", "forged-chunk", "forged-file", "by-hash"]),
)


@pytest.fixture
def people(api, personas):
    mallory = User.objects.create_user("mallory", "mallory@example.org", "pw")
    mallory.groups.add(Group.objects.get_or_create(name="steward")[0])
    return {"alice": api("alice"), "mallory": Api(token_create(user=mallory, name="t")[1])}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(push_step, min_size=2, max_size=5))
def test_every_file_pulls_back_as_pushed_and_nobody_reads_across_visibility(people, store_url, steps):
    run = next(_runs)
    # Contents of this example only: the database outlives an example, and what
    # an earlier one pushed would be readable here.
    pool = [random.Random(f"{run}-{i}").randbytes(size) for i, size in enumerate(SIZES)]
    datasets = {"alice": f"secret-{run}", "mallory": f"open-{run}"}
    had: dict[str, set[int]] = {"alice": set(), "mallory": set()}  # contents each really sent
    expected: dict[tuple[str, str], bytes] = {}  # (dataset, path) -> bytes, as of the head
    for number, (who, contents, kind) in enumerate(steps):
        push = Push(people[who], datasets[who]).open()
        for index in contents:
            data = pool[index]
            path = f"f{index}.bin"
            if kind == "honest":
                push.honest(path, data)
            elif kind == "forged-chunk":
                # Claims the content's chunks but sends other bytes in their place.
                push.send_pack([(chunk_id, bytes(len(piece))) for chunk_id, piece in chunked(data)])
                push.file(path, digest_hex(data), len(data), [c for c, _ in chunked(data)])
            elif kind == "forged-file":
                junk = random.Random(number).randbytes(len(data))
                pieces = chunked(junk)
                push.send_pack(pieces)
                push.file(path, digest_hex(data), len(data), [c for c, _ in pieces])
            else:  # by-hash: names content it never sent
                push.file(path, digest_hex(data), len(data), [c for c, _ in chunked(data)])
        answer = push.commit(message=f"step {number}")
        # What the pusher may read: what she sent, and mallory's public dataset.
        readable = had[who] | (had["mallory"] if who == "alice" else set())
        possessed = all(i in readable for i in contents)
        if kind == "honest" or (kind in ("by-hash", "forged-file") and possessed):
            # Naming content one may read is possession, whatever chunks come
            # with it (sound chunks sent along are stored, and unused).
            assert answer.status_code in (200, 201), answer.json()
            if kind == "honest":
                had[who].update(contents)
            expected = {key: value for key, value in expected.items() if key[0] != datasets[who]}
            expected.update({(datasets[who], f"f{i}.bin"): pool[i] for i in contents})
        else:
            assert answer.status_code == 400, (kind, contents, answer.json())
            assert answer.json()["error"].endswith(("nothing was committed.", "commit again."))
        if who == "alice" and Dataset.objects.filter(name=datasets["alice"]).exists():
            Dataset.objects.filter(name=datasets["alice"]).update(visibility=Dataset.Visibility.RESTRICTED)

    # Every file of every version pulls back as pushed, for its owner.
    for who, name in datasets.items():
        for version in Version.objects.filter(dataset__name=name):
            for walked in walk_tree(version.tree_id):
                if walked.entry.is_tree:
                    continue
                response = people[who].get(f"/datasets/{name}/versions/{version.id}/files/{walked.path}")
                assert response.status_code == 200
                body = b"".join(response.streaming_content)
                assert digest_hex(body) == walked.entry.digest
                assert body == pool[int(walked.path[1:-4])]
    for (name, path), data in expected.items():
        owner = "alice" if name.startswith("secret") else "mallory"
        response = people[owner].get(f"/datasets/{name}/versions/main/files/{path}")
        assert b"".join(response.streaming_content) == data
    # Mallory holds only what she sent herself (alice's dataset is restricted),
    # and cannot read alice's dataset.
    for version in Version.objects.filter(dataset__name=datasets["mallory"]):
        held = {int(w.path[1:-4]) for w in walk_tree(version.tree_id) if not w.entry.is_tree}
        assert held <= had["mallory"]
    if Dataset.objects.filter(name=datasets["alice"]).exists():
        assert people["mallory"].get(f"/datasets/{datasets['alice']}/versions").status_code == 404
