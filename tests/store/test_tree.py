"""Trees are canonical, and refuse names that could escape the folder."""

from __future__ import annotations

import pytest

from strata_store import tree


def test_tree_id_does_not_depend_on_entry_order():
    a = [tree.Entry("b", "f", 1, "x" * 64), tree.Entry("a", "f", 2, "y" * 64)]
    assert tree.encode(a) == tree.encode(list(reversed(a)))


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc", "nul\0byte"])
def test_unsafe_names_are_refused_when_building_and_reading(name):
    with pytest.raises(tree.InvalidTree):
        tree.encode([tree.Entry(name, "f", 0, "x" * 64)])
    data = ('[["{}","f",0,"{}"]]'.format(name.replace("\0", "\\u0000"), "x" * 64)).encode()
    with pytest.raises(tree.InvalidTree):
        tree.decode(data)


def test_a_tampered_tree_fails_its_hash():
    data = tree.encode([tree.Entry("a", "f", 1, "x" * 64)])
    with pytest.raises(tree.InvalidTree, match="hash mismatch"):
        tree.decode(data.replace(b'"a"', b'"b"'), expected_id=tree.tree_id(data))
