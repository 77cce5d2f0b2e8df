"""A CI job for a Strata change request: validate the schema, train, evaluate, report.

    export STRATA_URL=https://strata.example.org STRATA_TOKEN=...   # a steward's token
    python examples/ci_pipeline.py --change 12 --table labels.csv --label label \\
        --features temperature,vibration,pressure --eval machines-eval@v1 --model fault-detector

reads change request 12, pulls its source head, checks that the table has the
label column and numeric feature columns without empty values, trains a logistic
regression on it, scores its accuracy on a fixed evaluation set (the same table
in another dataset, pulled too; without --eval, the table's own rows whose
`split` column says test, after training on those that say train), and reports
the check "train-and-evaluate" on exactly the head it ran on. The check fails
when a table does not fit, or when the accuracy is under --min-accuracy (0 by
default). Whether the accuracy is worse than the model's in use is for Strata's
metric gate to say: it compares it with the newest version of each model trained
on the dataset.

Once the change request has merged, the same command with `--register
fault-detector@1.1` trains on the merged version and registers the model version
with the data it trained and was evaluated on. The first model version, before
any change request, comes from a ref: `--data machines@main --register
fault-detector@1.0`.

Exit codes: 0 the check passed (or the model was registered); 1 the check failed,
or could not be reported (the head moved: run again on the new head); 2 bad input.
It needs strata_client, scikit-learn and pyarrow, and no Django.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from strata_client import Client, ClientError, StrataClientError
from strata_client.lineage import record_training

CHECK = "train-and-evaluate"


class SchemaError(Exception):
    """The table is not what the training needs: the check fails, saying why."""


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Validate, train, evaluate and report a Strata check.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--change", type=int, help="the change request's number")
    what.add_argument("--data", metavar="DATASET@REF", help="train on this version (with --register)")
    parser.add_argument("--table", required=True, help="the training table's path in the version")
    parser.add_argument("--label", default="label", help="the label column (default: label)")
    parser.add_argument("--features", required=True, help="numeric feature columns, comma-separated")
    parser.add_argument("--eval", metavar="DATASET@REF", help="a fixed evaluation set with the same table")
    parser.add_argument("--split-column", default="split", help="without --eval: train and test rows")
    parser.add_argument("--min-accuracy", type=float, default=0.0, help="fail the check below this")
    parser.add_argument("--model", default="", help="the model the metrics are of")
    parser.add_argument("--register", metavar="MODEL@VERSION", help="register the model trained")
    parser.add_argument("--url", default="", help="a link to this CI run, shown with the check")
    parser.add_argument("--code", default="", help="REPOSITORY#COMMIT of the training code")
    args = parser.parse_args(argv)
    args.features = [name.strip() for name in args.features.split(",") if name.strip()]
    if args.register:
        name, _, version = args.register.partition("@")
        if not name or not version:
            parser.error("--register takes MODEL@VERSION, e.g. fault-detector@1.1.")
        args.model = name
    elif args.data:
        parser.error("--data is for registering a model: add --register MODEL@VERSION.")
    return args


def read_table(path: str, shown: str) -> pa.Table:
    if not os.path.isfile(path):
        raise SchemaError(f"{shown} has no table {os.path.basename(path)}")
    try:
        return pq.read_table(path) if path.endswith(".parquet") else pa_csv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise SchemaError(f"{shown} cannot be read as a table: {error}") from None


def is_number(column_type: pa.DataType) -> bool:
    return bool(pa.types.is_integer(column_type) or pa.types.is_floating(column_type))


def check_schema(table: pa.Table, features: list[str], label: str, shown: str) -> None:
    """Every column training reads is there and filled; features are numbers."""
    problems = []
    for column in [*features, label]:
        if column not in table.column_names:
            problems.append(f"no column {column}")
        elif table.column(column).null_count:
            problems.append(f"{table.column(column).null_count} empty values in {column}")
        elif column != label and not is_number(table.schema.field(column).type):
            problems.append(f"{column} is {table.schema.field(column).type}, not a number")
    if problems:
        raise SchemaError(f"{shown}: " + "; ".join(problems))
    if table.num_rows == 0:
        raise SchemaError(f"{shown} has no rows")


def split_rows(table: pa.Table, column: str, shown: str) -> tuple[pa.Table, pa.Table]:
    """The table's own train and test rows, by its split column."""
    if column not in table.column_names or not pa.types.is_string(table.schema.field(column).type):
        raise SchemaError(f"{shown} has no text column {column} saying train or test (or give --eval)")
    return (
        table.filter(pc.equal(table[column], "train")),
        table.filter(pc.equal(table[column], "test")),
    )


def train_and_score(train: pa.Table, test: pa.Table, features: list[str], label: str) -> float:
    """A scaled logistic regression fitted on `train`; its accuracy on `test`."""
    labels = train.column(label).to_pylist()
    if len(set(labels)) < 2:
        raise SchemaError(f"the training rows have {len(set(labels))} class; training needs two or more")

    def rows(table: pa.Table) -> list[tuple[float, ...]]:
        return list(zip(*(table.column(name).to_pylist() for name in features), strict=True))

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(rows(train), labels)
    return float(model.score(rows(test), test.column(label).to_pylist()))


def measure(client: Client, args: argparse.Namespace, data: str, evaluation: str | None) -> float:
    """Pull the data (and the evaluation set), check the tables, train and score."""
    shown = f"{args.table} of {short(data)}"
    with tempfile.TemporaryDirectory() as work:
        client.pull(data, os.path.join(work, "data"))
        table = read_table(os.path.join(work, "data", args.table), shown)
        check_schema(table, args.features, args.label, shown)
        if evaluation:
            client.pull(evaluation, os.path.join(work, "eval"))
            shown_eval = f"{args.table} of {short(evaluation)}"
            test = read_table(os.path.join(work, "eval", args.table), shown_eval)
            check_schema(test, args.features, args.label, shown_eval)
        else:
            table, test = split_rows(table, args.split_column, shown)
            if test.num_rows == 0:
                raise SchemaError(f"{shown} has no test rows to evaluate on")
        return train_and_score(table, test, args.features, args.label)


def exact(client: Client, ref: str) -> str:
    """`DATASET@REF` as `DATASET@<version id>`, so every step reads the same version."""
    return f"{ref.partition('@')[0]}@{client.resolve(ref)}"


def short(exact_ref: str) -> str:
    """`DATASET@<version id>` with the id cut to 12 characters, for people."""
    dataset, _, version_id = exact_ref.partition("@")
    return f"{dataset}@{version_id[:12]}"


def run(client: Client, args: argparse.Namespace) -> int:
    head = ""  # the change's head: the version the check is about
    if args.change is not None:
        change = client.change(args.change)
        wanted = "merged" if args.register else "open"
        if change["state"] != wanted:
            print(
                f"error: change request #{args.change} is {change['state']}, not {wanted}.", file=sys.stderr
            )
            return 2
        head = change["head"]
        data = f"{change['dataset']}@{change['merged_version'] if args.register else head}"
    else:
        data = exact(client, args.data)
    evaluation = exact(client, args.eval) if args.eval else None
    on = f"{short(evaluation)} ({args.table})" if evaluation else f"the test rows of {args.table}"
    try:
        accuracy = measure(client, args, data, evaluation)
    except SchemaError as error:
        state, summary, metrics = "failed", f"The schema does not fit: {error}.", {}
    else:
        state = "passed" if accuracy >= args.min_accuracy else "failed"
        summary = f"Accuracy {accuracy:.4f} on {on}, trained on {short(data)}."
        if state == "failed":
            summary += f" The minimum is {args.min_accuracy:g}."
        metrics = {"accuracy": round(accuracy, 6)}
    print(summary)

    if args.register:
        if not metrics:
            return 1
        name, _, version = args.register.partition("@")
        pins = {"train": data} | ({"eval": evaluation} if evaluation else {})
        params = {"estimator": "LogisticRegression", "features": args.features, "label": args.label}
        registered = record_training(
            client, model=name, version=version, datasets=pins, metrics=metrics, params=params, code=args.code
        )
        flagged = " (flagged: a metric is worse than its predecessor's)" if registered["flagged"] else ""
        print(f"Registered {registered['spec']}, trained on {short(data)}{flagged}.")
        return 0

    client.report_check(
        args.change, CHECK, state, summary=summary, metrics=metrics, url=args.url, head=head, model=args.model
    )
    print(f"Reported {CHECK}: {state} on change request #{args.change}, head {head[:12]}.")
    shown = client.change(args.change)
    for check in shown["checks"]:
        print(f"  {check['name']}: {check['state']}. {check['summary']}")
    print("It may merge." if shown["mergeable"] else "It cannot merge yet:")
    for blocker in shown["blockers"]:
        print(f"  - {blocker}")
    return 0 if state == "passed" else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    url, token = os.environ.get("STRATA_URL", ""), os.environ.get("STRATA_TOKEN", "")
    if not url or not token:
        print("error: set STRATA_URL to the server and STRATA_TOKEN to a steward's token.", file=sys.stderr)
        return 2
    try:
        return run(Client(url, token), args)
    except StrataClientError as error:
        print(f"error: {error}", file=sys.stderr)
        # A refused request (unknown change, no permission, bad token) is bad input;
        # a moved head, the network or a failing server is a check not done.
        return 2 if isinstance(error, ClientError) else 1


if __name__ == "__main__":
    sys.exit(main())
