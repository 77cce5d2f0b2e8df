"""The label-shift chart says in text what its bars show."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from catalog.domain.tabular import label_shift
from catalog.views.charts import label_shift_svg


def test_the_chart_is_valid_svg_with_every_label_and_share():
    shift = label_shift({"cat": 60, "dog": 40}, {"cat": 45, "dog": 55, "<bird>": 5}, "label")
    svg = label_shift_svg(shift, old_name="1.0.0", new_name="1.1.0")
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg")
    texts = [element.text for element in root.iter() if element.tag.endswith("text")]
    assert {"cat", "dog", "<bird>", "1.0.0", "1.1.0"} <= set(texts)
    assert "60.0%" in texts and "42.9%" in texts  # 45 of 105
    titles = [element.text for element in root.iter() if element.tag.endswith("title")]
    assert "Label distribution of label: 1.0.0 and 1.1.0" in titles
    assert "dog: 55 (52.4%)" in titles
