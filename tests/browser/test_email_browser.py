"""The HTML part of the rejection email in a real browser at phone width (issue 10 point 9).

Emails are made by the real pipeline (FakeConnector, file transport), read back from the .eml
as a mail client would, and shown in Debian's Chromium at 375×667: the invitation is a button
that fits the screen and carries the personal link, nothing scrolls sideways, nothing is loaded
from anywhere, and the text part still holds the plain URL. Screenshots go to
test-artifacts/browser/email-*.png.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from relay_core.cycle.run import run_cycle
from relay_core.mail.transports import FileTransport
from tests.browser.conftest import ARTIFACTS, NEEDS_CHROMIUM
from tests.consent.conftest import AGENCIES
from tests.fakes import FakeConnector, event

pytestmark = NEEDS_CHROMIUM
PHONE = {"width": 375, "height": 667}
NOW = datetime(2025, 6, 23, 2, 0, tzinfo=UTC)     # the events' rejection + 3 days
FEEDBACK = ("面接では、これまでのご経験を具体的にお話しいただき、ありがとうございました。\n"
            "Thank you for the concrete examples from your work.")


def setup(make_config):
    """A bilingual-by-default company with English names, feedback and re-application; three
    candidates: one Japanese, one English, one whose language the ATS does not say."""
    config = make_config({
        "agencies": AGENCIES,      # the relay can work, so the emails carry the invitation
        "company": {"name_en": "Sample K.K.", "sender_name_en": "Sample Recruiting",
                    "default_language": "bilingual"},
        "mail": {"feedback_requires_approval": False,
                 "reapply": {"enabled": True, "after_months": 6,
                             "careers_url": "https://example.co.jp/careers"}},
        "sources": [{"name": "fake", "type": "hrmos_export", "path": "x.tsv",
                     "feedback_field": "候補者へのフィードバック",
                     "job_titles": {"法人営業": {"ja": "法人営業（東京）",
                                                 "en": "Corporate Sales, Tokyo"}}}]})
    people = [("ja", "ja", "taro@example.com"), ("en", "en", "james@example.com"),
              ("bilingual", None, "alex@example.com")]
    events = [event(str(i), email=address, language=lang).model_copy(
        update={"feedback": FEEDBACK})
        for i, (_, lang, address) in enumerate(people, 1)]
    return config, events, people


def test_html_email_reads_well_on_a_phone(make_config, store, browser):
    config, events, people = setup(make_config)
    outbox = config.path(config.mail.outbox_dir)
    report = run_cycle(config, store, {"fake": FakeConnector(events=events)},
                       transport=FileTransport(outbox), now=NOW)
    assert report.sent == 3
    by_address = {}
    for path in sorted(Path(outbox).glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        by_address[message["To"].addresses[0].addr_spec] = message
    context = browser.new_context(viewport=PHONE, locale="ja-JP")
    external: list[str] = []
    for name, _, address in people:
        message = by_address[address]
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        link = next(w for w in text.split() if "/r/" in w)     # the text part keeps the URL
        page = context.new_page()
        page.on("request", lambda r: external.append(r.url)
                if not r.url.startswith(("about:", "data:")) else None)
        page.set_content(html)
        button = page.locator(f'a[href="{link}"]').first
        assert button.is_visible()
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert box["height"] >= 40                        # a thumb-sized target
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert page.get_by_text("6", exact=False).first.is_visible()
        heading = {"ja": "選考に関するコメント", "en": "Feedback from the hiring team",
                   "bilingual": "選考に関するコメント"}[name]
        assert page.get_by_text(heading).first.is_visible()
        if name == "bilingual":
            assert message["Content-Language"] == "ja, en"
            assert page.get_by_text("Feedback from the hiring team").first.is_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"email-{name}-phone.png"), full_page=True)
        page.close()
    assert external == []
    context.close()
