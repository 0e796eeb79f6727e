"""A real browser (Debian chromium, driven by Playwright) uses the Space as a visitor would: ask,
watch both answers, open the monologue, vote, stop; injected markup must show as text, never run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.scripted import ScriptedServer, fixed_length_model, launch, warm

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
        config = SpaceConfig(baseline=fixed, friction=scripted.spec(), max_new_tokens=48, configured=True,
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
    page.click("#vote-friction")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Recorded')", timeout=10_000)
    row = json.loads(demo.app_state.feedback.path.read_text().splitlines()[-1])
    assert row["vote"] == "friction" and row["prompt"].endswith("inject")
    assert row["answers"]["friction"]["monologue"].startswith("The answer below holds markup")


def test_stop_from_the_page_ends_the_answers(page):
    ask(page, "Think about this forever: endless")
    page.wait_for_function("document.querySelector('#stats-friction').innerText.includes('thinking')", timeout=15_000)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Stopped.')", timeout=10_000)
    assert "(stopped)" in page.locator("#chat-friction .message.bot").last.inner_text()
