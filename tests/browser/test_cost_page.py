"""The cost page in Chromium: the hand-worked scenario's figures, the timeline
chart and every version's retention status, readable at a glance."""

from __future__ import annotations

from tests.factories.browser import screenshot, sign_in


def test_cost_page_reads_calmly_in_chromium(page, personas, cost_scenario):
    sign_in(page, "bob")
    page.goto("/cost/")
    assert page.get_by_role("heading", name="Storage cost").is_visible()
    figures = page.locator(".cost-figures")
    assert "$41.25" in figures.inner_text() and "$30.75" in figures.inner_text()
    chart = page.locator("svg.cost-timeline")
    assert chart.is_visible() and chart.bounding_box()["width"] > 400
    status = page.locator("tr", has_text="archive@1.0.0")
    assert "about 4 h" in status.inner_text() and "cold" in status.inner_text()
    screenshot(page, "cost-page")
    page.set_viewport_size({"width": 420, "height": 900})
    screenshot(page, "cost-page-narrow")
