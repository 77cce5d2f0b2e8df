"""A dataset version carries the code that made it — a git repository and a commit
or branch — when the writer says so: `strata push --code`, the upload form, the
API's commit. It is part of the version's id only when given, so versions pushed
without one keep the ids they always had."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog.models import AuditEvent, Dataset, Version
from catalog.services.commits import version_id_for
from strata_store.hashing import EMPTY_DIGEST
from tests.factories.datasets import push

REPO = "https://git.example.org/ml/cleaning"


def _push(strata, path, dataset, *extra) -> dict:
    return json.loads(strata("push", str(path), dataset, "--json", *extra))


def _folder(tmp_path, name: str, content: str):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "data.csv").write_text(content)
    return folder


def _id_fields(version: Version, parents: list[str]) -> dict[str, object]:
    """What a version's id hashes, read back from its row (the card aside: none here)."""
    return {
        "dataset": version.dataset.name,
        "tree": version.tree_id,
        "parents": parents,
        "author": version.author,
        "message": version.message,
        "created": version.created.isoformat(),
        "semver": version.semver,
        "stage": version.stage,
    }


def test_a_version_pushed_with_code_shows_it_in_the_push_the_log_the_page_and_the_api(
    strata, personas, client, tmp_path
):
    folder = _folder(tmp_path, "d", "id,label\n1,cat\n")
    pushed = _push(strata, folder, "cleaned", "--code", f"{REPO}#3f2a9c1")
    assert (pushed["code_repo"], pushed["code_ref"]) == (REPO, "3f2a9c1")
    version = Version.objects.get(id=pushed["version"])
    assert (version.code_repo, version.code_ref, version.code) == (REPO, "3f2a9c1", f"{REPO}#3f2a9c1")
    text = strata(
        "push", str(_folder(tmp_path, "d", "id,label\n1,dog\n")), "cleaned", "--code", f"{REPO}#main"
    )
    assert f"code {REPO} @ main" in text

    log = json.loads(strata("log", "cleaned", "--json"))
    assert [(entry["code_repo"], entry["code_ref"]) for entry in log] == [(REPO, "main"), (REPO, "3f2a9c1")]

    client.force_login(personas["bob"])
    page = client.get(reverse("catalog:version_detail", args=["cleaned", "1.0.0"]))
    assert page.status_code == 200
    assert "<dt>Code</dt>" in page.content.decode()
    assert f"{REPO} @ 3f2a9c1" in page.content.decode()
    answer = client.get("/api/v1/datasets/cleaned/versions/1.0.0").json()
    assert (answer["code_repo"], answer["code_ref"]) == (REPO, "3f2a9c1")

    # Given to one version, never carried forward to the next.
    later = _push(strata, _folder(tmp_path, "d", "id,label\n2,cow\n"), "cleaned")
    assert (later["code_repo"], later["code_ref"]) == ("", "")
    assert client.get("/api/v1/datasets/cleaned/versions/main").json()["code_repo"] == ""
    page = client.get(reverse("catalog:version_detail", args=["cleaned", later["semver"]]))
    assert "<dt>Code</dt>" not in page.content.decode()


def test_the_code_reference_is_part_of_the_id_only_when_given(strata, tmp_path):
    plain = _push(strata, _folder(tmp_path, "d", "a\n"), "ids", "--date", "2025-03-01T09:00:00Z")
    version = Version.objects.get(id=plain["version"])
    # Without a code reference, the id hashes exactly what it always did.
    assert version_id_for(_id_fields(version, [])) == version.id

    coded = _push(
        strata,
        _folder(tmp_path, "d", "b\n"),
        "ids",
        "--date",
        "2025-04-01T09:00:00Z",
        "--code",
        f"{REPO}#abc",
    )
    version = Version.objects.get(id=coded["version"])
    fields = _id_fields(version, [plain["version"]])
    assert version_id_for(fields) != version.id
    assert version_id_for({**fields, "code": [REPO, "abc"]}) == version.id
    # A repository alone is a reference too.
    alone = _push(strata, _folder(tmp_path, "d", "c\n"), "ids", "--code", REPO)
    version = Version.objects.get(id=alone["version"])
    assert (version.code_repo, version.code_ref, version.code) == (REPO, "", REPO)
    assert version_id_for({**_id_fields(version, [coded["version"]]), "code": [REPO, ""]}) == version.id


@pytest.mark.parametrize("code", ["#3f2a9c1", f"{REPO}#"])
def test_a_bad_code_reference_is_refused_in_one_sentence_and_nothing_is_stored(cli, tmp_path, code):
    folder = _folder(tmp_path, "d", "id\n1\n")
    result = cli("push", str(folder), "coded", "--code", code)
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    assert "is not a code reference: write REPOSITORY#COMMIT." in message
    assert not Dataset.objects.filter(name="coded").exists()
    assert not AuditEvent.objects.exists()


def test_a_remote_commit_carries_its_code_and_a_bad_one_is_refused(api_client, personas, store_url):
    api = api_client(personas["alice"])
    entry = {"path": "empty.txt", "kind": "file", "size": 0, "digest": EMPTY_DIGEST}
    refused = api.post(
        "/api/v1/datasets/remote/versions",
        {"entries": [entry], "code": "no-repository#"},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert refused.json() == {"error": "'no-repository#' is not a code reference: write REPOSITORY#COMMIT."}
    assert not Dataset.objects.filter(name="remote").exists()

    made = api.post(
        "/api/v1/datasets/remote/versions",
        {"entries": [entry], "code": f"{REPO}#9e1f0aa"},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    assert (made.json()["version"]["code_repo"], made.json()["version"]["code_ref"]) == (REPO, "9e1f0aa")
    assert Version.objects.get(id=made.json()["version"]["id"]).code == f"{REPO}#9e1f0aa"


def test_the_upload_form_takes_a_code_reference_and_refuses_a_bad_one(client, personas, store_url, tmp_path):
    push(tmp_path, "shots", {"keep.txt": "kept"}, user=personas["alice"])
    client.force_login(personas["alice"])
    url = reverse("catalog:upload", args=["shots"])

    def upload(code: str):
        files = [SimpleUploadedFile("new.txt", b"new")]
        return client.post(url, {"branch": "main", "message": "", "stage": "", "code": code, "files": files})

    before = Version.objects.count()
    refused = upload("#3f2a9c1")
    assert refused.status_code == 400
    assert "is not a code reference: write REPOSITORY#COMMIT." in refused.content.decode()
    assert Version.objects.count() == before
    assert upload(f"{REPO}#3f2a9c1").status_code == 302
    head = Dataset.objects.get(name="shots").branches.get(name="main").head
    assert (head.code_repo, head.code_ref) == (REPO, "3f2a9c1")
