"""A real browser against `digest serve`: unsubscribe, add a topic, vote, by clicking.

`digest serve` runs as a subprocess on a free loopback port against a temporary
SQLite file; headless Chromium (Debian's `chromium` + `chromium-driver`) is
driven by selenium. Screenshots land in the test's tmp dir.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from digest.config import load_settings
from digest.email.render import Renderer
from digest.links import link_url
from digest.outbox import view_for_digest
from digest.outbox.build import views_for_digests
from digest.store.database import Store, open_store
from digest.store.schema import Digest, DigestItem, Subscriber, Topic, Vote
from tests.browser import chrome_options, require_chromium
from tests.plan_factories import add_paper

SECRET = "browser-test-secret-0123456789abcdef"
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PHONE = (390, 844)  # a common phone viewport, CSS pixels

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def digest_command() -> list[str]:
    """The installed `digest` script next to this Python, else the same entry point via -c."""
    script = Path(sys.executable).parent / "digest"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from digest.cli import main; main()"]


class Server:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{tmp / 'browser.db'}"
        self.config = tmp / "config.toml"
        self.maildir = tmp / "maildir"  # where confirmation emails land
        self.config.write_text(  # also read by the tests, to render emails like `digest run`
            f'database_url = "{self.database_url}"\n'
            f'[web]\nbase_url = "{self.base_url}"\nsecret = "{SECRET}"\n'
            "public_subscribe = true\n"
            f'[delivery]\nmaildir_path = "{self.maildir}"\n'
        )
        self.settings = load_settings(self.config)
        self.log = (tmp / "serve.log").open("w")
        self.process = subprocess.Popen(
            [
                *digest_command(),
                "serve",
                "--config",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        self.store: Store = open_store(self.database_url)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"digest serve exited: {(tmp / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("digest serve did not answer /healthz within 30 s")
            time.sleep(0.1)

    def link(self, purpose: str, subscriber_id: int, email: str) -> str:
        return link_url(
            self.base_url,
            SECRET.encode(),
            purpose,  # type: ignore[arg-type]
            subscriber_id,
            email,
            issued=datetime.now(UTC),
        )

    def stop(self) -> None:
        self.store.dispose()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `digest serve` for the module: starting it costs more than the tests."""
    running = Server(tmp_path_factory.mktemp("serve"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One headless Chromium with a fresh profile for the module."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    _, chromedriver = require_chromium()
    options = chrome_options(profile)
    # Headless windows have a minimum width; emulate a phone's viewport instead.
    options.add_experimental_option(
        "mobileEmulation",
        {"deviceMetrics": {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 2.0}},
    )
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def add_subscriber(store: Store, email: str, topics: tuple[str, ...]) -> int:
    with store.transaction() as session:
        subscriber = Subscriber(
            email=email,
            status="active",
            created_at=NOW,
            subscribed_at=NOW,
            updated_at=NOW,
            confirmed_at=NOW,
            topics=[Topic(query=q, created_at=NOW) for q in topics],
        )
        session.add(subscriber)
        session.flush()
        return subscriber.id


def status_of(store: Store, subscriber_id: int) -> str:
    with store.transaction() as session:
        found = session.get(Subscriber, subscriber_id)
        assert found is not None
        return found.status


def rendered_email(server: Server, subscriber_id: int) -> EmailMessage:
    """The email of a recorded digest, rendered the way delivery renders it."""
    with server.store.transaction() as session:
        digest = Digest(
            subscriber_id=subscriber_id,
            period="2026-11-22",
            status="sent",
            message_id=f"<2026-11-22.{subscriber_id}@example.org>",
            planned_at=NOW,
            window_start=NOW - timedelta(days=1),
        )
        session.add(digest)
        session.flush()
        view = view_for_digest(session, digest.id, server.settings, SECRET.encode())
    data = Renderer(server.settings).message_bytes(view)
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def page_wait(browser: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    """A wait that rides out the page being replaced under it. After a click that
    submits a form, ChromeDriver can look up the old page's element mid-navigation
    and report "Node with given id does not belong to the document", a plain
    WebDriverException rather than the stale-element one WebDriverWait ignores; a
    CI run failed on it. A page that never comes still fails, by timing out."""
    return WebDriverWait(
        browser, 10, ignored_exceptions=(StaleElementReferenceException, WebDriverException)
    )


def test_unsubscribe_by_clicking_the_button(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "ada@example.org", ("diffusion models",))
    message = rendered_email(server, sub_id)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    links = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    http_link = next(link for link in links if link.startswith(server.base_url))
    html = message.get_body(("html",))
    assert html is not None and f'href="{http_link}"' in html.get_content()
    browser.get(http_link)
    assert "ada@example.org" in browser.find_element(By.TAG_NAME, "main").text
    browser.save_screenshot(str(tmp_path / "unsubscribe.png"))
    assert status_of(server.store, sub_id) == "active"  # looking is not unsubscribing
    browser.find_element(By.ID, "unsubscribe").click()
    page_wait(browser).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "unsubscribed")
    )
    browser.save_screenshot(str(tmp_path / "unsubscribed.png"))
    assert status_of(server.store, sub_id) == "unsubscribed"


def test_subscribe_again_after_unsubscribing(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "ida@example.org", ("diffusion models", "kv cache"))
    browser.get(server.link("unsubscribe", sub_id, "ida@example.org"))
    browser.find_element(By.ID, "unsubscribe").click()
    page_wait(browser).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "unsubscribed")
    )
    assert status_of(server.store, sub_id) == "unsubscribed"
    button = browser.find_element(By.ID, "resubscribe")
    assert button.text == "Subscribe again"
    browser.save_screenshot(str(tmp_path / "unsubscribed-subscribe-again.png"))
    button.click()
    page_wait(browser).until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".notice"), "You are subscribed again"
        )
    )
    browser.save_screenshot(str(tmp_path / "subscribed-again.png"))
    assert status_of(server.store, sub_id) == "active"
    # landed on the manage page, topics kept
    assert "diffusion models" in browser.find_element(By.CSS_SELECTOR, "ul.topics").text
    assert "kv cache" in browser.find_element(By.CSS_SELECTOR, "ul.topics").text


def test_the_manage_page_hint_tells_how_topics_match(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "jo@example.org", ("diffusion models",))
    browser.get(server.link("manage", sub_id, "jo@example.org"))
    field = browser.find_element(By.ID, "query")
    hint = browser.find_element(By.ID, field.get_attribute("aria-describedby") or "missing")
    assert hint.is_displayed()
    browser.save_screenshot(str(tmp_path / "manage-hint.png"))
    assert "must all appear" not in hint.text.lower()
    assert "loosely" in hint.text
    assert '"exact phrase"' in hint.text and "+word" in hint.text
    # the strict forms it names are accepted as typed
    field.send_keys('+benchmark "kv cache"')
    browser.find_element(By.ID, "add-topic").click()
    page_wait(browser).until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".notice"), "Topic added"
        )
    )
    assert '+benchmark "kv cache"' in browser.find_element(By.CSS_SELECTOR, "ul.topics").text


def test_subscribe_on_the_front_page(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{server.base_url}/")
    browser.find_element(By.ID, "email").send_keys("kim@example.org")
    browser.find_element(By.ID, "topic").send_keys('"kv cache" +quantiz*')
    zone = browser.find_element(By.ID, "timezone")
    assert zone.get_attribute("value") == "UTC"
    zone.send_keys("Europe/Paris")
    # the honeypot is there for bots, out of a person's sight and tab order
    trap = browser.find_element(By.NAME, "website")
    assert trap.rect["x"] + trap.rect["width"] <= 0 and trap.get_attribute("tabindex") == "-1"
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths == [PHONE[0], PHONE[0]]  # fits a phone, hidden field included
    browser.save_screenshot(str(tmp_path / "subscribe.png"))
    browser.find_element(By.ID, "subscribe-button").click()
    page_wait(browser).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Check your inbox")
    )
    browser.save_screenshot(str(tmp_path / "subscribe-sent.png"))
    with server.store.transaction() as session:
        found = session.scalars(
            select(Subscriber).where(Subscriber.email == "kim@example.org")
        ).one()
        assert (found.status, found.timezone) == ("pending", "Europe/Paris")
        assert [t.query for t in found.topics] == ['"kv cache" +quantiz*']
    # the confirmation email is sent after the page: wait for it to land
    new = server.maildir / "new"
    deadline = time.monotonic() + 10
    while not (new.is_dir() and any(new.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.1)
    (mail,) = new.iterdir()
    assert "To: kim@example.org" in mail.read_text()


def test_add_a_topic_on_the_manage_page(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "bob@example.org", ("diffusion models",))
    browser.get(server.link("manage", sub_id, "bob@example.org"))
    field = browser.find_element(By.ID, "query")
    field.send_keys('"flow matching" OR rectified')
    browser.save_screenshot(str(tmp_path / "manage.png"))
    browser.find_element(By.ID, "add-topic").click()
    page_wait(browser).until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".notice"), "Topic added"
        )
    )
    browser.save_screenshot(str(tmp_path / "manage-added.png"))
    assert '"flow matching" OR rectified' in browser.find_element(By.CSS_SELECTOR, "ul.topics").text
    with server.store.transaction() as session:
        queries = session.scalars(
            select(Topic.query).where(Topic.subscriber_id == sub_id).order_by(Topic.id)
        ).all()
    assert list(queries) == ["diffusion models", '"flow matching" OR rectified']
    # The page fits a phone: nothing wider than the viewport.
    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths == [PHONE[0], PHONE[0]]


def test_a_bad_topic_is_explained_on_the_page(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "cy@example.org", ("diffusion models",))
    browser.get(server.link("manage", sub_id, "cy@example.org"))
    browser.find_element(By.ID, "query").send_keys("(kv cache <b>")
    browser.find_element(By.ID, "add-topic").click()
    error = page_wait(browser).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "pre.error"))
    )
    browser.save_screenshot(str(tmp_path / "manage-error.png"))
    assert "unclosed parenthesis" in error.text
    assert "(kv cache <b>" in error.text  # shown as typed, as text
    assert browser.find_element(By.ID, "query").get_attribute("value") == "(kv cache <b>"
    with server.store.transaction() as session:
        queries = session.scalars(select(Topic.query).where(Topic.subscriber_id == sub_id)).all()
    assert list(queries) == ["diffusion models"]


def test_view_in_browser_link_of_an_email(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "dee@example.org", ("diffusion models",))
    message = rendered_email(server, sub_id)
    body = message.get_body(("html",))
    assert body is not None
    html = body.get_content()
    view_link = re.search(rf'href="({re.escape(server.base_url)}/d/[^"]+)"', html)
    assert view_link is not None
    browser.get(view_link[1])
    browser.save_screenshot(str(tmp_path / "view.png"))
    shown = browser.find_element(By.TAG_NAME, "body").text
    assert "dee@example.org" in shown or "diffusion models" in shown
    assert "This link is not valid" not in shown


def test_one_click_post_over_real_http(server: Server) -> None:
    """What a mail provider does with List-Unsubscribe-Post, against the running server."""
    sub_id = add_subscriber(server.store, "fay@example.org", ("diffusion models",))
    response = httpx.post(
        server.link("unsubscribe", sub_id, "fay@example.org"),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert status_of(server.store, sub_id) == "unsubscribed"


def emailed_vote_links(server: Server, subscriber_id: int, title: str) -> tuple[str, str, int]:
    """("More like this" URL, "Less like this" URL, topic id) of the one paper of a recorded
    digest, as found in its rendered email's HTML.

    Issued now: `digest serve` checks the links' age against the real clock.
    """
    issued = datetime.now(UTC)
    with server.store.transaction() as session:
        topic_id = session.scalars(
            select(Topic.id).where(Topic.subscriber_id == subscriber_id).order_by(Topic.id)
        ).first()
        assert topic_id is not None
        digest = Digest(
            subscriber_id=subscriber_id,
            period=issued.date().isoformat(),
            status="sent",
            message_id=f"<votes.{subscriber_id}@example.org>",
            planned_at=issued,
            window_start=issued - timedelta(days=1),
            items=[
                DigestItem(
                    paper_id=add_paper(session, title),
                    rank=1,
                    score=1.0,
                    topic_id=topic_id,
                    topic_label="diffusion models",
                )
            ],
        )
        session.add(digest)
        session.flush()
        view = views_for_digests(session, [digest.id], server.settings, SECRET.encode())[digest.id]
    html = Renderer(server.settings).html(view)
    links = {
        label: re.findall(rf'href="([^"]+)"[^>]*>{label} like this</a>', html)
        for label in ("More", "Less")
    }
    assert len(links["More"]) == 1 and len(links["Less"]) == 1, links
    assert links["Less"][0].startswith(f"{server.base_url}/less/")
    return links["More"][0], links["Less"][0], topic_id


def votes_of(store: Store, subscriber_id: int) -> list[tuple[int, int]]:
    """(vote, topic id) of each of a subscriber's votes."""
    with store.transaction() as session:
        rows = session.execute(
            select(Vote.vote, Vote.topic_id).where(Vote.subscriber_id == subscriber_id)
        )
        return [(vote, topic) for vote, topic in rows]


def test_less_like_this_from_an_email(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "gus@example.org", ("diffusion models",))
    title = "Diffusion Models That Forget on Purpose"
    _, less, topic_id = emailed_vote_links(server, sub_id, title)
    browser.get(less)
    main = browser.find_element(By.TAG_NAME, "main").text
    assert title in main and "diffusion models" in main
    browser.save_screenshot(str(tmp_path / "vote-confirm.png"))
    assert votes_of(server.store, sub_id) == []  # looking is not voting
    button = browser.find_element(By.ID, "vote")
    assert button.text == "Less like this"
    button.click()
    page_wait(browser).until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".notice"), "Papers like this will rank lower in diffusion models"
        )
    )
    browser.save_screenshot(str(tmp_path / "vote-recorded.png"))
    assert browser.find_element(By.ID, "undo").text == "Undo"
    assert votes_of(server.store, sub_id) == [(-1, topic_id)]


def test_opening_a_vote_link_writes_nothing(
    server: Server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    sub_id = add_subscriber(server.store, "hal@example.org", ("diffusion models",))
    title = "Diffusion Models Read Twice"
    more, less, _ = emailed_vote_links(server, sub_id, title)
    for link in (more, less, more):  # a scanner, a preview, the reader: all only look
        browser.get(link)
        assert title in browser.find_element(By.TAG_NAME, "main").text
        assert "This link is not valid" not in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "vote-looked.png"))
    assert browser.find_element(By.ID, "vote").text == "More like this"
    assert votes_of(server.store, sub_id) == []
