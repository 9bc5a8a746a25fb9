"""The review app in a real browser (Debian's Chromium, headless, driven by Playwright).

A user opens the people page, renames, splits by ticking faces (click, shift-click), merges,
rejects, undoes, names an unknown face and answers the "Same person?" queue; then runs
`facecluster run` again and checks in the page that everything held. A failing test leaves a
screenshot of the page in test-artifacts/ (or $FACECLUSTER_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from facecluster import api
from facecluster.store import Store
from facecluster.store import people as P
from facecluster.web import ReviewServer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("FACECLUSTER_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "test-artifacts"))

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright.expect


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A page at laptop size; on failure its screenshot is kept as a test artefact."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(15_000)
    failures = request.session.testsfailed
    yield page
    if request.session.testsfailed > failures or errors:  # the test's call phase has been reported
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def review(sample_folder, tmp_path):
    output = tmp_path / "people"
    api.run(sample_folder, output, workers=1, quiet=True)
    with ReviewServer(output / "faces.db", output) as server:
        yield server, sample_folder, output


def toast(page, text: str) -> None:
    expect(page.locator(".toast").filter(has_text=text).last).to_be_visible()


def open_person(page, url: str, label: str) -> None:
    page.goto(url)
    page.locator(".person-card").filter(has_text=label).first.click()
    expect(page.locator(".person-head h1")).to_have_text(label)


def test_corrections_in_the_browser_hold_after_another_run(page, review):
    server, photos, output = review
    url = server.url
    with Store(output / "faces.db") as store:
        obama = P.list_people(store)[0]
        unknown = P.person_faces(store, None)
    assert obama.faces == 6 and len(unknown) == 1
    label = f"person_{obama.id:04d}"

    # People page -> person page; rename
    page.goto(url)
    expect(page.locator(".person-card")).to_have_count(1)
    open_person(page, url, label)
    page.get_by_role("button", name="Add a name").click()
    page.locator("#rename-dialog input").fill("Barack")
    page.get_by_role("button", name="Save name").click()
    expect(page.locator(".person-head h1")).to_have_text("Barack")
    toast(page, "Named")

    # Split three faces off: tick the first, shift-click the third
    chips = page.locator(".chip")
    chips.nth(0).hover()
    chips.nth(0).locator(".check").click()
    chips.nth(2).click(modifiers=["Shift"])
    expect(page.locator(".selected-count")).to_have_text("3 selected")
    split_faces = [int(chips.nth(i).get_attribute("data-face")) for i in range(3)]
    page.locator("[data-selection=split]").click()
    page.locator("#split-dialog input").fill("Obama B")
    page.get_by_role("button", name="Create person").click()
    toast(page, "Split 3 faces off as Obama B")
    expect(page.locator(".chip")).to_have_count(3)
    expect(page.locator("[data-face-count]")).to_have_text("3 faces")

    # Split one more face off (unnamed), then merge it back from the person page
    chips.nth(0).locator(".check").click()
    page.keyboard.press("Escape")  # Esc clears a selection...
    expect(page.locator(".selection-bar")).to_be_hidden()
    chips.nth(0).locator(".check").click()  # ...so tick again
    page.locator("[data-selection=split]").click()
    page.get_by_role("button", name="Create person").click()
    toast(page, "Split 1 face off as person_")
    stray = re.search(r"person_\d{4}", page.locator(".toast").last.inner_text()).group(0)
    page.get_by_role("button", name="Merge with…").click()
    page.locator("#merge-dialog input").fill(stray)
    page.locator("#merge-dialog .suggestions li").filter(has_text=stray).click()
    page.locator("#merge-dialog button.primary").click()
    toast(page, f"Merged {stray} into Barack")
    expect(page.locator(".chip")).to_have_count(3)

    # The photo viewer: every box drawn and named
    page.locator(".chip").first.click()
    expect(page.locator("#viewer .box.current a")).to_have_text("Barack")
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()

    # Reject a face of Obama B, undo it from the top bar, reject again
    open_person(page, url, "Obama B")
    page.locator(".chip").nth(2).locator(".check").click()
    rejected = int(page.locator(".chip").nth(2).get_attribute("data-face"))
    page.locator("[data-selection=reject]").click()
    toast(page, "Rejected 1 face")
    expect(page.locator(".chip")).to_have_count(2)
    expect(page.locator('[data-action="undo"]')).to_contain_text("rejecting 1 face")
    page.locator('[data-action="undo"]').click()
    toast(page, "Undid rejecting 1 face")
    expect(page.locator(".chip")).to_have_count(3)
    page.locator(f'.chip[data-face="{rejected}"] .check').click()
    page.locator("[data-selection=reject]").click()
    toast(page, "Rejected 1 face")

    # Unknown: name the face (a new person) with the name box
    page.goto(url + "unknown")
    page.locator(".chip").first.locator(".check").click()
    page.locator("[data-selection=move]").click()
    page.locator("#move-dialog input").fill("Joe")
    page.locator("#move-dialog .suggestions li").filter(has_text="New person “Joe”").click()
    page.locator("#move-dialog button.primary").click()
    toast(page, "Split 1 face off as Joe")
    expect(page.locator(".group")).to_have_count(0)

    # The "Same person?" queue: answer with the keyboard
    page.goto(url + "queue")
    question = page.locator("[data-question]")
    if question.count():
        asked = question.get_attribute("data-question")
        page.keyboard.press("n")
        page.wait_for_load_state("load")
        expect(page.locator(".toast").last).to_be_visible()
        expect(page.locator(f'[data-question="{asked}"]')).to_have_count(0)
        with Store(output / "faces.db") as store:
            assert P.history(store, 1)[0]["action"] in ("different", "not-person")
    else:
        expect(page.locator("h1")).to_have_text("No questions left")

    # Everything holds after another run
    api.run(photos, output, workers=1, quiet=True)
    page.goto(url)
    cards = page.locator(".person-card")
    expect(cards).to_have_count(3)
    expect(cards.filter(has_text="Barack")).to_contain_text("3 faces")
    expect(cards.filter(has_text="Obama B")).to_contain_text("2 faces")
    expect(cards.filter(has_text="Joe")).to_contain_text("1 face")
    expect(page.locator("body")).not_to_contain_text(stray)
    open_person(page, url, "Obama B")
    assert sorted(int(c.get_attribute("data-face")) for c in page.locator(".chip").all()) == \
        sorted(set(split_faces) - {rejected})
    page.goto(url + "rejected")
    expect(page.locator(".chip")).to_have_count(1)
    expect(page.locator(f'.chip[data-face="{rejected}"]')).to_have_count(1)
    assert (output / "Barack").is_dir() and (output / "Obama_B").is_dir()


def test_enter_on_a_partial_name_asks_which_person(page, review):
    """In the move dialog, Enter on text that only starts people's names creates nobody: it
    asks for a choice; choosing from the list then moves the face."""
    server, _, output = review
    with Store(output / "faces.db") as store:
        person = max(P.list_people(store), key=lambda p: p.faces)
        P.name_person(store, person.id, "Anna Smith")
        P.move_faces(store, P.person_faces(store, person.id)[-1:], None, "Annie Jones")
        people_before = len(P.list_people(store))
    open_person(page, server.url, "Anna Smith")
    page.locator(".chip").first.locator(".check").click()
    page.locator("[data-selection=move]").click()
    box = page.locator("#move-dialog input")
    box.fill("Ann")
    expect(page.locator("#move-dialog .suggestions li").filter(has_text="Annie Jones")).to_be_visible()
    box.press("Enter")
    expect(page.locator("#move-dialog .form-error")).to_contain_text("Choose a person")
    expect(page.locator("#move-dialog")).to_be_visible()
    with Store(output / "faces.db") as store:
        assert len(P.list_people(store)) == people_before  # nobody called "Ann" was made
    page.locator("#move-dialog .suggestions li").filter(has_text="Annie Jones").click()
    page.locator("#move-dialog button.primary").click()
    toast(page, "Moved 1 face to Annie Jones")


def test_people_page_on_a_phone_search_and_update_folders(browser, review, request):
    server, _, output = review
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(server.url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px phone"
        page.locator("[data-live-search]").fill("nobody-has-this-name")
        expect(page.locator("#cards .empty")).to_contain_text("Nobody matches")
        page.locator("[data-live-search]").fill("person")
        expect(page.locator(".person-card")).to_have_count(1)
        shutil.rmtree(output / "unknown")
        page.locator('[data-action="export"]').click()
        toast(page, "Folders updated")
        assert (output / "unknown").is_dir()
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        raise
    finally:
        context.close()
