"""The README's screenshots of the two graph views, taken from a running API server: an
instruction's neighbourhood and a version's walk ("why these rows"), each with a node hovered.

The browser tests' screenshots come from their small k = 8 graph; these show what a real graph
looks like. Made from the demo's k = 64 graph:

    GRADWALK_STATE_DIR=/tmp/demo-state python scripts/screenshots.py --url http://127.0.0.1:8790 \
        --dataset demo-gsm8k-5pct

It signs in with the state folder's local admin token (its UI session is deleted again by signing
out), opens the version's first row and its "why these rows" page in headless Chromium (the same
browser as tests/ui), and writes docs/screenshots/neighbourhood-k64.png and walk-k64.png. It
changes nothing else.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from gradwalk.settings import get_settings

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1300", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def drawn(driver: webdriver.Chrome, box: str) -> None:
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(f"return document.getElementById('{box}').dataset.ready"))


def hover(driver: webdriver.Chrome, box: str, pick: str) -> None:
    """Moves the mouse onto the node that the JavaScript expression ``pick`` finds in ``cy`` until its
    tip shows its text (again, a pixel aside: cytoscape may still hold the box's place from before a
    scroll, and the pointer crosses other nodes on its way)."""
    node, x, y = driver.execute_script(
        f"const b = document.getElementById('{box}'), cy = b.cy, n = ({pick}), p = n.renderedPosition(),"
        " r = b.getBoundingClientRect(); return [n.id(), r.left + b.clientLeft + p.x, r.top + b.clientTop + p.y];")
    text = driver.execute_script(f"return document.getElementById('{box}').cy.getElementById(arguments[0]).data('text')", node)
    tip, tries = driver.find_element(By.ID, f"{box}-tip"), iter(range(100))

    def shown(d: webdriver.Chrome) -> bool:
        moving = ActionBuilder(d)
        moving.pointer_action.move_to_location(int(x) + next(tries) % 2, int(y))
        moving.perform()
        return tip.is_displayed() and text in tip.text

    WebDriverWait(driver, 20).until(shown)


def shoot(url: str, dataset: str, version: int, folder: Path) -> list[Path]:
    token = get_settings().local_token_file.read_text().strip()
    driver = chromium()
    try:
        driver.get(f"{url}/ui/datasets/{dataset}/{version}")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "signin").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#rows a.row-link"))
        driver.get(driver.find_element(By.CSS_SELECTOR, "#rows a.row-link").get_attribute("href"))
        drawn(driver, "neighbourhood")
        driver.execute_script("document.getElementById('neighbourhood-controls').scrollIntoView()")
        driver.execute_script("window.scrollBy(0, -130)")
        hover(driver, "neighbourhood", "cy.nodes().not('.center')[0]")
        written = [folder / "neighbourhood-k64.png", folder / "walk-k64.png"]
        driver.save_screenshot(str(written[0]))

        driver.get(f"{url}/ui/datasets/{dataset}/{version}/why")
        drawn(driver, "walk-graph")
        driver.execute_script("document.getElementById('walk-component').scrollIntoView()")
        driver.execute_script("window.scrollBy(0, -130)")
        hover(driver, "walk-graph", "cy.nodes('.anchor')[0]")
        driver.save_screenshot(str(written[1]))
        driver.find_element(By.CSS_SELECTOR, "form.who button").click()  # signs out: the session is deleted
        return written
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the API server, e.g. http://127.0.0.1:8790")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--version", type=int, default=1)
    args = parser.parse_args()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path in shoot(args.url.rstrip("/"), args.dataset, args.version, SCREENSHOTS):
        print(path)


if __name__ == "__main__":
    main()
