"""The one path rule every way into the store shares: which paths are safe, and
which links stay inside their tree once every other link is followed."""

from __future__ import annotations

import os

import pytest

from strata_store import paths, tree

LONG_NAME = "n" * 300


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a.txt", None),
        ("data/train/part-0.parquet", None),
        ("é" * 127, None),  # 254 bytes of UTF-8
        ("x" * 255, None),
        ("x" * 256, "has a name of 256 bytes"),
        ("é" * 128, "has a name of 256 bytes"),
        (f"data/{LONG_NAME}/a.txt", "has a name of 300 bytes"),
        ("/etc/passwd", "is absolute"),
        ("", "is empty"),
        ("a//b", "has an empty name"),
        ("a/", "has an empty name"),
        ("./a", "has a '.' name"),
        ("a/../../b", "has a '..' name"),
        ("..", "has a '..' name"),
        ("with\0nul", "holds a NUL character"),
        ("dir\\file.txt", "holds a backslash"),
        ("a/" * 1600 + "b", "over the 3072 allowed"),
        ("bad\ud800text", "is not valid text"),
    ],
)
def test_a_path_is_safe_only_when_relative_and_made_of_safe_names(path, problem):
    found = paths.path_problem(path)
    if problem is None:
        assert found is None
        paths.check_path(path)
    else:
        assert found is not None and problem in found, found
        with pytest.raises(paths.UnsafePath) as refused:
            paths.check_path(path)
        message = str(refused.value)
        assert message.startswith(f"{paths.shown(path)} is not a safe path: it ") and message.endswith(".")
        assert "give a relative path inside the folder" in message


def test_a_name_read_from_a_filesystem_counts_its_undecodable_bytes_once_each():
    undecodable = os.fsdecode(b"\xff" * 255)
    assert paths.path_problem(undecodable) is None
    assert "256 bytes" in paths.path_problem(undecodable + "x")


def test_a_backslash_is_let_through_only_where_old_trees_are_read_back():
    assert paths.path_problem("a\\b", backslash_allowed=True) is None
    assert paths.path_problem("a\\b") is not None


def test_tree_names_obey_the_same_segment_rule():
    for name in ["ok", "x" * 255, "a\\b"]:
        tree.check_name(name)
    for name in ["", ".", "..", "a/b", "nul\0", "x" * 256, "é" * 128]:
        with pytest.raises(tree.UnsafeName, match="unsafe name"):
            tree.check_name(name)
        assert paths.segment_problem(name) is not None


LINK_CASES = [
    # (links, the link refused or None, words of the refusal)
    ({"a": "b.txt"}, None, ""),
    ({"d/a": "../b.txt"}, None, ""),
    ({"here": "."}, None, ""),
    ({"d/up": ".."}, None, ""),  # the root itself is inside
    ({"up": ".."}, "up", "points outside the folder"),
    ({"d/l": "../../etc/passwd"}, "d/l", "points outside the folder"),
    ({"l": "/etc/passwd"}, "l", "must point to a relative path inside"),
    ({"l": ""}, "l", "must point to a relative path inside"),
    ({"l": "a\\..\\..\\x"}, "l", "must point to a relative path inside"),
    # a link to a link: the first link leads where the second does
    ({"a": "b", "b": "c/d.txt"}, None, ""),
    ({"a": "b", "d/b": "../../x"}, "d/b", "points outside"),
    # `..` after a link climbs from where the link leads, not from its name
    ({"d/up": "..", "esc": "d/up/../etc/passwd"}, "esc", "points outside"),
    ({"d/up": "..", "esc": "d/up/d/up/d/up/etc/passwd"}, None, ""),  # stays at the root
    ({"d/e/up": "../..", "esc": "d/e/up/../x"}, "esc", "points outside"),
    # a link to a folder that is itself a link
    ({"deep": "a/b/c", "a": "x/y", "x/y/b/c": "../../../../.."}, "deep", "points outside"),
    ({"top": "a/b", "a": "x", "x/b": "../c.txt"}, None, ""),
    ({"linked": "real", "via": "linked/../../outside"}, "via", "points outside"),
    # loops
    ({"a": "a"}, "a", "loop of links"),
    ({"a": "b", "b": "a"}, "a", "loop of links"),
    ({"d/loop": "../d/loop/x"}, "d/loop", "loop of links"),
    ({f"l{i}": f"l{i + 1}" for i in range(45)} | {"l45": "file.txt"}, "l0", "more than 40"),
]


@pytest.mark.parametrize(("links", "refused", "words"), LINK_CASES)
def test_a_link_is_kept_only_when_it_stays_inside_its_tree_after_every_link(links, refused, words):
    if refused is None:
        paths.check_links(links)
        return
    with pytest.raises(paths.UnsafePath) as error:
        paths.check_links(links)
    assert error.value.path == refused
    message = str(error.value)
    assert f"the link {refused} " in message and words in message, message
    assert message.count(".") >= 1 and message.endswith("."), message


def test_a_chain_resolves_where_the_filesystem_resolves_it(tmp_path):
    root = tmp_path / "tree"
    (root / "d" / "e").mkdir(parents=True)
    links = {"d/up": "..", "d/e/side": "../up/d", "far": "d/e/side/up/d/e"}
    for path, target in links.items():
        os.symlink(target, root / path)
    for path in links:
        resolved = paths.resolve_link(path, links)
        assert os.path.realpath(root / path) == os.path.realpath(root / resolved)


def test_an_absolute_link_inside_the_folder_is_stored_relative(tmp_path):
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    assert paths.local_link_target(str(root), "d/l", str(root / "a.txt")) == "../a.txt"
    with pytest.raises(paths.UnsafePath, match="the link d/l points outside the folder"):
        paths.local_link_target(str(root), "d/l", str(tmp_path / "secret"))


def test_the_client_refuses_a_folder_whose_links_lead_out_before_uploading(tmp_path):
    from strata_client.errors import ClientError
    from strata_client.scan import scan

    root = tmp_path / "data"
    (root / "d").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    os.symlink("..", root / "d" / "up")
    os.symlink("d/up/../outside", root / "esc")
    with pytest.raises(ClientError, match=r"^the link esc points outside the folder") as refused:
        scan(str(root))
    assert refused.value.exit_code == 2
    os.unlink(root / "esc")
    os.symlink("d/up/d/up/a.txt", root / "fine")  # a chain that stays inside is kept
    assert scan(str(root)).links == {"d/up": "..", "fine": "d/up/d/up/a.txt"}
