"""The digest HTML in a real browser: headless Chromium at phone and desktop widths.

Skipped only when Chromium is not installed locally; with $CI set a missing
Chromium fails the test, so CI can never pass without running it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.config import SenderSettings, Settings
from digest.email.render import Renderer
from tests.browser import chrome_options, require_chromium
from tests.render_views import sample_view

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    _, chromedriver = require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = chrome_options(tmp_path_factory.mktemp("chromium-profile"))
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield browser
    finally:
        browser.quit()


@pytest.mark.parametrize("width", [375, 600])
def test_digest_fits_the_screen_and_shows_every_title(
    driver: object, tmp_path: Path, width: int
) -> None:
    from selenium.webdriver.common.by import By

    view = sample_view(10)
    renderer = Renderer(
        Settings(sender=SenderSettings(address="digest@example.org", postal_address="1 Example St"))
    )
    page = tmp_path / "digest.html"
    page.write_text(renderer.html(view), encoding="utf-8")

    browser = driver
    browser.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    browser.get(page.as_uri())  # type: ignore[attr-defined]
    scroll_width, inner_width = browser.execute_script(  # type: ignore[attr-defined]
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert inner_width == width
    assert scroll_width <= inner_width, f"horizontal overflow at {width}px: {scroll_width}px"

    links = browser.find_elements(By.CSS_SELECTOR, "a.title-link")  # type: ignore[attr-defined]
    assert [link.text for link in links] == [card.title for card in view.papers]
    for link in links:
        assert link.is_displayed()
        left, right = browser.execute_script(  # type: ignore[attr-defined]
            "const r = arguments[0].getBoundingClientRect(); return [r.left, r.right];", link
        )
        assert left >= 0 and right <= width, f"title cut off at {width}px: {link.text}"

    shot = tmp_path / f"digest-{width}px.png"
    browser.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 2400, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    assert browser.save_screenshot(str(shot))  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000


def test_the_7bit_html_part_reads_as_the_rendered_page(driver: object, tmp_path: Path) -> None:
    """The HTML goes on the wire as 7bit (references for what is outside ASCII, long
    lines broken between attributes): a browser given the part as a mail client decodes
    it must show the same text, links and preview line as the page as rendered."""
    import email
    from email import policy
    from email.message import EmailMessage

    view = sample_view(10)
    renderer = Renderer(
        Settings(sender=SenderSettings(address="digest@example.org", postal_address="1 Example St"))
    )
    message = email.message_from_bytes(renderer.message_bytes(view), policy=policy.default)
    assert isinstance(message, EmailMessage)
    html = list(message.iter_parts())[1]
    assert isinstance(html, EmailMessage) and html["Content-Transfer-Encoding"] == "7bit"
    wire = tmp_path / "wire.html"
    wire.write_text(html.get_content(), encoding="utf-8")
    rendered = tmp_path / "rendered.html"
    rendered.write_text(renderer.html(view), encoding="utf-8")

    browser = driver
    seen = []
    for page in (rendered, wire):
        browser.get(page.as_uri())  # type: ignore[attr-defined]
        seen.append(
            browser.execute_script(  # type: ignore[attr-defined]
                "return [document.body.innerText, document.body.textContent,"
                " [...document.links].map(a => a.href), document.title]"
            )
        )
    assert seen[0] == seen[1]
    assert any(not ch.isascii() for ch in seen[1][0])  # the references were read
