"""`strata split` and `strata card import` as real processes: one sentence, exit 2."""

from __future__ import annotations

import pytest

from catalog.models import Version


@pytest.fixture
def pushed(cli, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "reviews.csv").write_text("id,text,label\n1,same,pos\n2,same,neg\n3,other,pos\n")
    cli("push", str(data), "reviews", check=True)
    return data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id-column", "uid"], "error: cannot split reviews@1.0.0: there is no id column 'uid'"),
        (
            ["--id-column", "text"],
            "error: cannot split reviews@1.0.0: the id column 'text' has 1 duplicate ids",
        ),
        (
            ["--id-column", "id", "--ratios", "train=0.8,test=0.1"],
            "error: cannot split: the ratios add up to 0.9",
        ),
        (
            ["--id-column", "id", "--label-column", "stars"],
            "error: cannot split reviews@1.0.0: there is no label",
        ),
    ],
)
def test_bad_split_input_exits_2_with_one_sentence(cli, pushed, args, message):
    result = cli("split", "reviews@main", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message) and result.stderr.strip().count("\n") == 0, result.stderr
    assert Version.objects.count() == 1


def test_malformed_card_exits_2_with_one_sentence(cli, pushed, tmp_path):
    bad = tmp_path / "README.md"
    bad.write_text("---\nlicense: [mit\n---\n# Card\n")
    result = cli("card", "import", "reviews", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: cannot import the card: the card's YAML front matter is not valid"
    )
    assert Version.objects.count() == 1


def test_split_on_the_command_line_prints_sizes_and_leakage(cli, pushed):
    result = cli("split", "reviews@main", "--id-column", "id", "--label-column", "label", "--ratios", "a=0.5,b=0.5",
                 check=True)  # fmt: skip
    assert "Split reviews@1.0.0 into reviews@1.1.0" in result.stdout
    assert "leakage:" in result.stdout
