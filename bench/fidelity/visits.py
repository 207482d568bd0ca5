"""The fidelity corpus: each page of pages/ and the scripted visit between its start and end screenshots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from playwright.sync_api import Page


@dataclass(frozen=True)
class Visit:
    name: str
    path: str  # under pages/, with the URL fragment the visitor arrives with
    act: Callable[[Page], None]  # what the visitor does between the start and end screenshots
    # Set where the replay cannot match by design, with the reason; the page is still measured and shown.
    known_gap: str = ""


def wheel_to(page: Page, y: int) -> None:
    """Scroll with the mouse wheel, as a reader does, until the page is at `y` (or its bottom)."""
    page.mouse.move(500, 400)
    for _ in range(40):  # bounded: each turn scrolls up to 1200 px
        current = page.evaluate("() => scrollY")
        bottom = page.evaluate("() => document.scrollingElement.scrollHeight - innerHeight")
        if current >= min(y, bottom) - 1:
            return
        page.mouse.wheel(0, min(1200, y - current))
        page.wait_for_function(f"() => scrollY != {current}", timeout=5000)


def nothing(page: Page) -> None:
    pass


def open_and_close_answers(page: Page) -> None:
    page.click("#q1 > summary")
    page.click("#q3 > summary")
    page.click("#q2 > summary")  # open at load: closes
    page.wait_for_function("() => q1.open && q3.open && !q2.open")
    # Then a click on the title, as readers do: focus rings are not replayed (rrweb records no focus), and this
    # page measures <details>, not them.
    page.click("h1")


def jump_to_an_anchor(page: Page) -> None:
    page.click('.toc a[href="#deploy"]')
    page.wait_for_function("() => location.hash == '#deploy'")


def switch_theme(page: Page) -> None:
    page.click("#theme")
    page.wait_for_function("() => document.documentElement.classList.contains('dark')")


def choose_in_shadow_dom(page: Page) -> None:
    page.locator("price-card[featured] button").click()  # Playwright pierces open shadow roots
    page.wait_for_function(
        "() => document.querySelector('price-card[featured]').shadowRoot.querySelector('.state').textContent"
        ".startsWith('Chosen')"
    )


def select_in_iframe(page: Page) -> None:
    frame = page.frame_locator("#report")
    frame.locator("#r3").click()
    frame.locator("#r6").click()
    frame.locator("#chosen").filter(has_text="Support tickets").wait_for()


def add_tasks(page: Page) -> None:
    page.click("#add")
    page.click("#add")
    page.wait_for_function("() => document.querySelectorAll('#app li').length == 5")


VISITS = [
    Visit("fonts", "fonts.html", lambda page: wheel_to(page, 300)),
    Visit("custom-props", "custom-props.html", lambda page: wheel_to(page, 250)),
    Visit("tall", "tall.html", lambda page: wheel_to(page, 9000)),
    Visit("target", "target.html#configure", jump_to_an_anchor),
    Visit("details", "details.html", open_and_close_answers),
    Visit("theme", "theme.html", switch_theme),
    Visit("shadow-dom", "shadow.html", choose_in_shadow_dom),
    Visit("iframe", "iframe.html", select_in_iframe),
    Visit("css-in-js", "css-in-js.html", add_tasks),
    # The tracker tag comes first on this page: it keeps the text replaceSync is given (a constructed sheet has
    # no other, and Chromium's CSSOM keeps nothing of a var() shorthand that a later longhand resets).
    Visit("constructed", "constructed.html", lambda page: wheel_to(page, 100)),
    Visit("canvas", "canvas.html", nothing),
]
