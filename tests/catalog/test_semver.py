"""Semantic versions follow the change: schema MAJOR, data MINOR; an explicit
version that understates the change is refused unless overridden with a reason."""

from __future__ import annotations

import json

from catalog.models import AuditEvent


def _push(strata, path, *extra):
    return json.loads(strata("push", str(path), "tables", "--json", *extra))


def test_schema_changes_are_major_and_data_changes_minor(strata, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "labels.csv").write_text("id,label\n1,cat\n2,dog\n")
    assert _push(strata, data)["semver"] == "1.0.0"
    (data / "labels.csv").write_text("id,label\n1,cat\n2,dog\n3,cat\n")
    assert _push(strata, data)["semver"] == "1.1.0"
    (data / "notes.txt").write_text("a new file")
    assert _push(strata, data)["semver"] == "1.2.0"
    (data / "labels.csv").write_text("id,label,annotator\n1,cat,ann\n2,dog,ann\n3,cat,bob\n")
    assert _push(strata, data)["semver"] == "2.0.0"
    (data / "labels.csv").write_text("id,label,annotator\n1,cat,ann\n2,dog,ann\n3,1.5,bob\n")
    assert _push(strata, data)["semver"] == "2.1.0"  # still strings: no type change
    (data / "labels.csv").write_text("id,label\n1,cat\n")
    assert _push(strata, data)["semver"] == "3.0.0"
    event = AuditEvent.objects.filter(action="version.create").order_by("-created").first()
    assert event.after["bump"] == "major"
    assert "labels.csv: column annotator removed" in event.after["bump_reasons"]


def test_an_understated_semver_is_refused_unless_overridden_with_a_reason(strata, cli, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "t.csv").write_text("id,label\n1,a\n")
    strata("push", str(data), "tables", "--semver", "1.2.0")
    (data / "t.csv").write_text("id,label,extra\n1,a,x\n")
    refused = cli("push", str(data), "tables", "--semver", "1.3.0")
    assert refused.returncode == 2
    assert (
        "version 1.3.0 understates a major change from 1.2.0 (t.csv: column extra added): use 2.0.0"
        in refused.stderr
    )
    assert json.loads(cli("log", "tables", "--json").stdout)[0]["semver"] == "1.2.0"
    accepted = cli(
        "push",
        str(data),
        "tables",
        "--semver",
        "1.3.0",
        "--allow-semver-override",
        "consumers ignore extra columns",
        "--json",
    )
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["semver"] == "1.3.0"
    event = AuditEvent.objects.filter(action="version.create").order_by("-created").first()
    assert event.after["semver_override"] == "consumers ignore extra columns"
    assert event.after["bump"] == "major"


def test_a_parquet_schema_change_is_read_from_the_files_ends(strata, tmp_path):
    """The parent's schema comes from the store without reading the whole file:
    a 3 MB Parquet table's footer is in its last chunks."""
    import io
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(5)
    rows = 200_000
    table = pa.table({"id": list(range(rows)), "noise": [rng.random() for _ in range(rows)]})
    data = tmp_path / "d"
    data.mkdir()

    def write(t):
        buffer = io.BytesIO()
        pq.write_table(t, buffer)
        (data / "t.parquet").write_bytes(buffer.getvalue())

    write(table)
    assert _push(strata, data)["semver"] == "1.0.0"
    write(table.set_column(1, "noise", pa.array([v + 1 for v in table.column("noise").to_pylist()])))
    assert _push(strata, data)["semver"] == "1.1.0"
    write(table.append_column("label", pa.array(["x"] * rows)))
    assert _push(strata, data)["semver"] == "2.0.0"
    event = AuditEvent.objects.filter(action="version.create").order_by("-created").first()
    assert event.after["bump_reasons"] == ["t.parquet: column label added"]
