"""The main navigation marks the section a page belongs to."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize(
    ("path", "section"),
    [
        ("/", "Datasets"),
        ("/models/", "Models"),
        ("/models/compare/", "Models"),
        ("/lineage/", "Lineage"),
        ("/lineage/compare/", "Lineage"),
        ("/rollbacks/", "Rollbacks"),
        ("/cost/", "Cost"),
        ("/retention/", "Cost"),
    ],
)
def test_the_current_section_is_marked_in_the_navigation(client, personas, path, section):
    client.force_login(personas["erin"])
    page = client.get(path).content.decode()
    nav = re.search(r'<nav class="main-nav".*?</nav>', page, re.DOTALL).group(0)
    assert re.findall(r'aria-current="page">([^<]+)</a>', nav) == [section]
