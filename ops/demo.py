"""The demo catalog: Strata's whole story, told on real data in under a minute.

Built on a fresh install by ``manage.py strata_setup`` (``make run``), from data
that ships inside scikit-learn, so nothing is downloaded:

- ``digits-raw``: the UCI handwritten digits as 64×64 PNG scans, collected in two
  batches (dated in the past), the second with re-sent duplicates and files
  truncated in transfer;
- ``digits``: cleaned (exact duplicates and unreadable scans dropped, a recorded
  run with its parameters), labelled by vendor A, hash-split 80/10/10, with a
  complete card; model ``digit-classifier`` 1.0 is trained on that split;
- then vendor B relabels batch 2 and reads most 1s as 7, 9s as 4 and 3s as 8:
  a label shift. Re-split, model 1.1 is trained on it and its accuracy drops (flagged as
  a regression); the steward asks to roll ``digits`` back, and the request waits
  for an approver;
- ``breast-cancer``: a tabular set whose cleaning renames every column (a major
  version), marked golden;
- a retention run moves the raw scans, untouched for weeks, to the warm tier, so
  the cost page has something to say.

Every step goes through the same services the command line and the API call:
the models are really trained (scikit-learn's logistic regression on the pulled,
verified files) and their metrics are what they scored. The label noise of
vendor B is the one thing made up, with a fixed seed.
"""

from __future__ import annotations

import csv
import io
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from cards.services.cards import card_import, version_mark_golden
from cards.services.splits import split_make
from catalog import permissions
from catalog.models import Branch, Dataset, Version
from catalog.services.datasets import dataset_update
from catalog.services.pull import version_pull
from catalog.services.versions import version_push
from governance.services.rollback import rollback_request
from lifecycle.models import RetentionRun
from lifecycle.services.retention import retention_advance, retention_plan
from lineage.services.runs import run_record, version_endpoint
from registry.services.training import training_record

DEMO_USERS = (
    ("steward", permissions.STEWARD, "pushes data, records runs and models, asks for rollbacks"),
    ("approver", permissions.APPROVER, "approves or rejects rollbacks"),
    ("viewer", permissions.VIEWER, "reads the catalog"),
)
DEMO_DATASETS = ("digits-raw", "digits", "breast-cancer")
MODEL = "digit-classifier"
UCI_DIGITS = "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits"
UCI_BREAST_CANCER = "https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic"

FIRST_BATCH = 900  # scans 0..899 came in the first batch, the rest in the second
RESENT = 24  # scans of batch 1 that the scanner sent again in batch 2
TRUNCATED = 6  # scans of batch 2 cut short in transfer
# Vendor B's confusions in batch 2: (true label, label given, share of those scans).
VENDOR_B_CONFUSIONS = ((1, 7, 0.9), (9, 4, 0.8), (3, 8, 0.8))
SEED = 7


class DemoError(Exception):
    """The demo could not be built (its data is missing, or the catalog is not empty)."""


@dataclass
class DemoReport:
    """What the demo built, for the start-up message and the tests."""

    users: dict[str, str] = field(default_factory=dict)  # username -> password
    accuracy: dict[str, float] = field(default_factory=dict)  # model version -> accuracy
    rollback_id: int | None = None
    seconds: float = 0.0


def catalog_is_empty() -> bool:
    return not Dataset.objects.exists()


def demo_users_create(password_file: Path) -> dict[str, str]:
    """One user per role (their passwords kept, owner-only, in `password_file`), or
    the ones made before, read back from it."""
    users = get_user_model()
    saved = demo_passwords_read(password_file)
    made: dict[str, str] = {}
    for username, role, _ in DEMO_USERS:
        if users.objects.filter(username=username).exists():
            if username in saved:
                made[username] = saved[username]
            continue
        password = secrets.token_urlsafe(12)
        user = users.objects.create_user(username, f"{username}@localhost", password)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        made[username] = password
    password_file.write_text("".join(f"{name} {password}\n" for name, password in made.items()))
    password_file.chmod(0o600)
    return made


def demo_passwords_read(path: Path) -> dict[str, str]:
    """The demo users' passwords kept in `path` (username -> password), if any."""
    if not path.exists():
        return {}
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    return {name: password for name, password in pairs}


def demo_build(*, password_file: Path, say: Callable[[str], None] = lambda line: None) -> DemoReport:
    """Build the demo catalog into an empty Strata. Raises DemoError if it is not
    empty: the demo never writes beside someone's data."""
    if not catalog_is_empty():
        raise DemoError("the catalog already holds datasets; the demo is built only into an empty one.")
    started = time.monotonic()
    report = DemoReport(users=demo_users_create(password_file))
    steward = get_user_model().objects.get(username="steward")
    with tempfile.TemporaryDirectory(prefix="strata-demo-") as scratch:
        story = _Story(Path(scratch), steward, say)
        story.collect()
        story.clean()
        story.label()
        story.split_and_train("1.0", "Train on vendor A's labels")
        story.relabel()
        story.split_and_train("1.1", "Retrain with vendor B's batch-2 labels")
        report.rollback_id = story.ask_rollback()
        story.tabular()
        story.tier()
        report.accuracy = story.accuracy
    report.seconds = time.monotonic() - started
    return report


class _Story:
    """The demo's steps, in order, sharing a scratch folder and the steward."""

    def __init__(self, scratch: Path, steward: Any, say: Callable[[str], None]) -> None:
        self.scratch = scratch
        self.steward = steward
        self.say = say
        self.accuracy: dict[str, float] = {}
        self.split_versions: dict[str, Version] = {}
        self.labelled: Version | None = None
        from sklearn.datasets import load_digits

        digits = load_digits()
        self.pixels = digits.images  # 1797 × 8 × 8, values 0..16
        self.labels = [int(label) for label in digits.target]
        self.now = timezone.now()

    # -- raw collection ---------------------------------------------------------------

    def collect(self) -> None:

        self.say("collecting the raw scans (two batches)")
        raw = self.scratch / "digits-raw"
        scans = raw / "scans"
        rows = [("scan_id", "batch", "file", "bytes")]
        for batch, indexes, when in (
            (1, range(FIRST_BATCH), self.now - timedelta(days=75)),
            (2, range(FIRST_BATCH, len(self.labels)), self.now - timedelta(days=45)),
        ):
            folder = scans / f"batch-{batch}"
            folder.mkdir(parents=True)
            for index in indexes:
                data = _scan(self.pixels[index])
                (folder / f"{_scan_id(index)}.png").write_bytes(data)
                rows.append(
                    (
                        _scan_id(index),
                        str(batch),
                        f"scans/batch-{batch}/{_scan_id(index)}.png",
                        str(len(data)),
                    )
                )
            if batch == 2:
                # The scanner re-sent part of batch 1 under new ids, and a few files
                # were cut short in transfer: what cleaning is for.
                for offset in range(RESENT):
                    source = scans / "batch-1" / f"{_scan_id(offset * 37)}.png"
                    resent_id = f"scan-{90000 + offset:05d}"
                    shutil.copyfile(source, folder / f"{resent_id}.png")
                    rows.append(
                        (resent_id, "2", f"scans/batch-2/{resent_id}.png", str(source.stat().st_size))
                    )
                for offset in range(TRUNCATED):
                    victim = folder / f"{_scan_id(FIRST_BATCH + 50 + offset * 101)}.png"
                    victim.write_bytes(victim.read_bytes()[:40])
            _write_csv(raw / "collection.csv", rows)
            result = version_push(
                path=str(raw),
                dataset_name="digits-raw",
                user=self.steward,
                message=f"Scanner batch {batch}: {len(indexes):,} forms from the NIST handprint collection",
                stage="raw",
                created=when,
            )
            run_record(
                user=self.steward,
                name=f"collect-scans-batch-{batch}",
                step="collection",
                params={"batch": batch, "scanner": "preprinted forms, 64×64 grayscale"},
                inputs=[UCI_DIGITS],
                outputs=[version_endpoint(result.version)],
                started=when - timedelta(hours=3),
                ended=when,
                origin="demo",
            )
        self.raw = result.version
        self._describe(
            "digits-raw",
            "Handwritten digit scans as collected, before any cleaning. "
            "From the UCI optical recognition of handwritten digits data (E. Alpaydin, C. Kaynak, 1998).",
        )

    # -- cleaning -----------------------------------------------------------------------

    def clean(self) -> None:
        from PIL import Image

        self.say("cleaning: dropping duplicates and unreadable scans")
        raw_scans = sorted((self.scratch / "digits-raw" / "scans").glob("batch-*/*.png"))
        work = self.scratch / "digits"
        (work / "images").mkdir(parents=True)
        seen: dict[bytes, str] = {}
        duplicates, corrupt = 0, 0
        rows = [("scan_id", "batch", "file")]
        for path in raw_scans:
            data = path.read_bytes()
            try:
                image = Image.open(io.BytesIO(data))
                image.load()
            except OSError:
                corrupt += 1
                continue
            if data in seen:
                duplicates += 1
                continue
            seen[data] = path.stem
            normalised = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
            (work / "images" / path.name).write_bytes(_png_bytes(normalised))
            rows.append((path.stem, path.parent.name.removeprefix("batch-"), f"images/{path.name}"))
        _write_csv(work / "images.csv", rows)
        result = version_push(
            path=str(work),
            dataset_name="digits",
            user=self.steward,
            message=(
                f"Clean the raw scans: {duplicates} exact duplicates and {corrupt} unreadable files dropped,"
                " the rest normalised to 32×32"
            ),
            stage="cleaned",
        )
        run_record(
            user=self.steward,
            name="clean-scans",
            step="cleaning",
            params={
                "dedup": "exact (BLAKE3 of the file)",
                "drop_corrupt": True,
                "resize": "32×32, Lanczos",
                "duplicates_dropped": duplicates,
                "corrupt_dropped": corrupt,
            },
            code="https://example.org/digits-pipeline@3f2c1d0",
            inputs=[version_endpoint(self.raw)],
            outputs=[version_endpoint(result.version)],
            origin="demo",
        )
        dataset = self._describe(
            "digits",
            "Handwritten digits, cleaned, labelled and split: the training data of digit-classifier.",
        )

        card_import(user=self.steward, dataset=dataset, text=DIGITS_CARD)

    def _describe(self, name: str, description: str) -> Dataset:
        """Set a dataset's description the way its edit page does (audited)."""

        return dataset_update(
            user=self.steward, dataset=Dataset.objects.get(name=name), description=description
        )

    # -- labelling ----------------------------------------------------------------------

    def label(self) -> None:
        self.say("labelling: vendor A annotates every scan")
        self._annotate(
            vendor="A",
            labels={row[0]: (self.labels[_index_of(row[0])], "vendor-a") for row in self._image_rows()},
            message="Annotate every scan (vendor A, two annotators, disagreements adjudicated)",
        )
        self.labelled = _head("digits")

    def relabel(self) -> None:
        import numpy

        self.say("a later data run: vendor B relabels batch 2 (with a label shift)")
        rng = numpy.random.default_rng(SEED)
        labels = {}
        for scan_id, batch, _ in self._image_rows():
            label = self.labels[_index_of(scan_id)]
            if batch != "2":
                labels[scan_id] = (label, "vendor-a")
                continue
            for true, given, share in VENDOR_B_CONFUSIONS:
                if label == true and rng.random() < share:
                    label = given
            labels[scan_id] = (label, "vendor-b")
        self._annotate(
            vendor="B",
            labels=labels,
            message="Relabel batch 2 with vendor B (cheaper, single annotator)",
            batch="2",
        )

    def _image_rows(self) -> list[tuple[str, str, str]]:
        with open(self.scratch / "digits" / "images.csv", newline="") as handle:
            return [tuple(row) for row in list(csv.reader(handle))[1:]]  # type: ignore[misc]

    def _annotate(
        self, *, vendor: str, labels: dict[str, tuple[int, str]], message: str, batch: str = "all"
    ) -> None:

        work = self.scratch / "digits"
        head = _head("digits")
        # The split of the labels before is stale: the new version drops it and is split again.
        shutil.rmtree(work / "splits", ignore_errors=True)
        rows = [("scan_id", "label", "annotator")]
        rows += [(scan_id, str(label), annotator) for scan_id, (label, annotator) in labels.items()]
        _write_csv(work / "labels.csv", rows)
        result = version_push(
            path=str(work), dataset_name="digits", user=self.steward, message=message, stage="labelled"
        )
        run_record(
            user=self.steward,
            name=f"annotate-vendor-{vendor.lower()}",
            step="annotation",
            params={"vendor": vendor, "batch": batch, "guidelines": "digits-v2.pdf", "labels": 10},
            inputs=[version_endpoint(head)],
            outputs=[version_endpoint(result.version)],
            origin="demo",
        )

    # -- split, train, evaluate ------------------------------------------------------------

    def split_and_train(self, model_version: str, description: str) -> None:

        self.say(f"hash split 80/10/10 and training {MODEL} {model_version}")
        dataset = Dataset.objects.get(name="digits")
        head = _head("digits")
        split = split_make(
            user=self.steward,
            dataset=dataset,
            source=head,
            id_column="scan_id",
            ratios="train=0.8,val=0.1,test=0.1",
            label_column="label",
            file="labels.csv",
            origin="demo",
        ).version
        self.split_versions[model_version] = split
        # Keep the working copy in step with the branch (it now holds splits/).
        checkout = self.scratch / f"checkout-{model_version}"
        version_pull(version=split, dest=str(checkout))
        shutil.rmtree(self.scratch / "digits")
        shutil.copytree(checkout, self.scratch / "digits")
        accuracy, macro_f1, params = _train_and_score(checkout)
        self.accuracy[model_version] = accuracy
        started = timezone.now()
        training_record(
            user=self.steward,
            model=MODEL,
            version=model_version,
            datasets={"train": f"digits@{split.id}", "test": f"digits@{split.id}"},
            metrics={"accuracy": accuracy, "macro_f1": macro_f1},
            params=params,
            code="https://example.org/digits-pipeline@3f2c1d0",
            artifact=f"s3://models/{MODEL}/{model_version}/model.joblib",
            description=description,
            started=started,
            ended=timezone.now(),
            origin="demo",
        )

    # -- the rollback request -------------------------------------------------------------

    def ask_rollback(self) -> int:

        self.say("asking to roll digits back to the split model 1.0 trained on")
        dataset = Dataset.objects.get(name="digits")
        target = self.split_versions["1.0"]
        drop = self.accuracy["1.0"] - self.accuracy["1.1"]
        request = rollback_request(
            user=self.steward,
            dataset=dataset,
            branch="main",
            target=target,
            reason=(
                f"Vendor B's relabelling of batch 2 shifted the labels (1 read as 7, 9 as 4, 3 as 8); "
                f"{MODEL} 1.1 lost {drop * 100:.1f} points of accuracy. Back to {target.semver}, "
                "the split 1.0 was trained on, until batch 2 is re-annotated."
            ),
        )
        return request.pk

    # -- a tabular set ---------------------------------------------------------------------

    def tabular(self) -> None:
        from sklearn.datasets import load_breast_cancer

        self.say("breast-cancer: a tabular set, cleaned (its columns renamed) and marked golden")
        data = load_breast_cancer()
        work = self.scratch / "breast-cancer"
        work.mkdir()
        raw_header = ["id", *data.feature_names, "target"]
        raw_rows = [
            [str(842000 + index), *(f"{value:g}" for value in row), str(int(target))]
            for index, (row, target) in enumerate(zip(data.data, data.target, strict=True))
        ]
        _write_csv(work / "wdbc.csv", [raw_header, *raw_rows])
        raw = version_push(
            path=str(work),
            dataset_name="breast-cancer",
            user=self.steward,
            message="Wisconsin diagnostic breast cancer features, as exported",
            stage="raw",
        ).version
        clean_header = ["id", *(name.replace(" ", "_") for name in data.feature_names), "diagnosis"]
        clean_rows = [[*row[:-1], "benign" if row[-1] == "1" else "malignant"] for row in raw_rows]
        _write_csv(work / "wdbc.csv", [clean_header, *clean_rows])
        cleaned = version_push(
            path=str(work),
            dataset_name="breast-cancer",
            user=self.steward,
            message="Name columns in snake_case; the target becomes a readable diagnosis",
            stage="cleaned",
        ).version
        run_record(
            user=self.steward,
            name="normalise-columns",
            step="cleaning",
            params={"columns": "snake_case", "target": "0 → malignant, 1 → benign"},
            inputs=[UCI_BREAST_CANCER, version_endpoint(raw)],
            outputs=[version_endpoint(cleaned)],
            origin="demo",
        )
        dataset = self._describe(
            "breast-cancer", "Features of breast mass images with their diagnosis (UCI, 569 patients)."
        )
        carded = card_import(user=self.steward, dataset=dataset, text=BREAST_CANCER_CARD)
        version_mark_golden(user=self.steward, version=carded)

    # -- tiers and cost ----------------------------------------------------------------------

    def tier(self) -> None:

        self.say("retention: moving data untouched for 30 days to the warm tier")
        run = retention_plan(trigger="demo")
        if run.state == RetentionRun.State.APPROVED:
            retention_advance(run_id=run.pk)


def _head(dataset_name: str) -> Version:
    return Branch.objects.select_related("head").get(dataset__name=dataset_name, name="main").head


def _scan_id(index: int) -> str:
    return f"scan-{index:05d}"


def _index_of(scan_id: str) -> int:
    return int(scan_id.removeprefix("scan-"))


def _scan(pixels: Any) -> bytes:
    """An 8×8 digit (0..16) as the scanner gives it: a 64×64 grayscale PNG, dark
    ink on white paper."""
    import numpy
    from PIL import Image

    ink = (255 - numpy.asarray(pixels, dtype=numpy.float64) * (255 / 16)).astype(numpy.uint8)
    return _png_bytes(Image.fromarray(ink, mode="L").resize((64, 64), Image.Resampling.BICUBIC))


def _png_bytes(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _write_csv(path: Path, rows: list[Any]) -> None:
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _train_and_score(checkout: Path) -> tuple[float, float, dict[str, Any]]:
    """Train a logistic regression on the split's train rows, score it on its test
    rows, reading every image from the pulled (verified) files."""
    import numpy
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    def load(split: str) -> tuple[Any, Any]:
        with open(checkout / "splits" / f"{split}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        features = [
            numpy.asarray(Image.open(checkout / "images" / f"{row['scan_id']}.png").resize((16, 16))).ravel()
            / 255.0
            for row in rows
        ]
        return numpy.array(features), numpy.array([int(row["label"]) for row in rows])

    params: dict[str, Any] = {
        "estimator": "LogisticRegression",
        "C": 1.0,
        "max_iter": 2000,
        "features": "16×16 pixels",
    }
    train_x, train_y = load("train")
    test_x, test_y = load("test")
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"]).fit(train_x, train_y)
    predicted = model.predict(test_x)
    return (
        round(float(accuracy_score(test_y, predicted)), 4),
        round(float(f1_score(test_y, predicted, average="macro")), 4),
        params,
    )


DIGITS_CARD = """---
pretty_name: Handwritten digits (UCI optdigits, 32×32 scans)
license: cc-by-4.0
task_categories:
- image-classification
size_categories:
- 1K<n<10K
source_datasets:
- uci/optical-recognition-of-handwritten-digits
annotations_creators:
- expert-generated
tags:
- digits
- demo
---

# Handwritten digits

## Dataset Summary

Scans of handwritten digits 0–9, one 32×32 grayscale PNG per scan, with one
label per scan in `labels.csv` and a stable hash split in `splits/`.

## Intended Uses

Training and evaluating small digit classifiers; teaching and testing data pipelines.

## Out-of-Scope Uses

Identifying the people who wrote the digits; any decision about a person.

## Data Sources and Collection

The test set of the UCI optical recognition of handwritten digits data: forms
filled in by 13 people, scanned and normalised by NIST's preprocessing, 8×8
counts of 4×4 blocks, drawn back here at 32×32. Collected in two batches.

## Annotation Process

Labelled by an annotation vendor; each run is recorded with its vendor and
guidelines in the lineage of the version it produced.

## Bias, Risks, and Limitations

Only 13 writers: styles are few. Labels come from annotation vendors whose
quality varies by batch: compare versions before trusting a relabelling.

## Personal and Sensitive Information

None: digits only, no names or forms.

## Licensing and Citation

CC BY 4.0. E. Alpaydin and C. Kaynak, Optical Recognition of Handwritten Digits,
UCI Machine Learning Repository, 1998.

## Preprocessing

Exact duplicates (same BLAKE3 digest) and scans that do not decode as PNG are
dropped; the run that did it is in the lineage with its counts.

## Maintenance

The data team's stewards; ask for changes through a rollback or a new version.

## Contact

steward@localhost
"""

BREAST_CANCER_CARD = """---
pretty_name: Breast cancer Wisconsin (diagnostic)
license: cc-by-4.0
task_categories:
- tabular-classification
size_categories:
- n<1K
source_datasets:
- uci/breast-cancer-wisconsin-diagnostic
tags:
- medical
- demo
---

# Breast cancer Wisconsin (diagnostic)

## Dataset Summary

569 breast masses, 30 features computed from a digitised image of a fine
needle aspirate, and the diagnosis (malignant or benign).

## Intended Uses

Benchmarking tabular classifiers; teaching.

## Out-of-Scope Uses

Clinical decisions about any patient.

## Data Sources and Collection

W. Wolberg, O. Mangasarian, N. Street and W. Street, University of Wisconsin,
1995, through the UCI Machine Learning Repository.

## Annotation Process

Diagnoses from the clinical records of the patients.

## Bias, Risks, and Limitations

One hospital, 1995, 569 patients: small and old; class balance 63% benign.

## Personal and Sensitive Information

Health data, de-identified at source: ids are sample numbers, not patients'.

## Licensing and Citation

CC BY 4.0. Wolberg, W., Mangasarian, O., Street, N., Street, W. (1993). Breast
Cancer Wisconsin (Diagnostic). UCI Machine Learning Repository.

## Maintenance

The data team's stewards.

## Contact

steward@localhost
"""
