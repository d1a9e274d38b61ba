"""The explorer in headless Chromium (Selenium with Debian's chromium and chromium-driver), for
its tests, its screenshots and its latency benchmark.

`ExplorerPage` drives the page the way a person does (types, clicks, moves the slider) and waits
until every request the action caused has been answered and drawn.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

# Chromium's own connections (updates, sync, QUIC probes) would be refused on a closed network.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync")
INSTALL_HINT = "apt-get update && apt-get install -y chromium chromium-driver"


def chromium(width: int = 1500, height: int = 1050):
    """A headless Chromium WebDriver; RuntimeError with the install command when it is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        raise RuntimeError(f"Chromium and ChromeDriver are needed ({INSTALL_HINT}).")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='tfode-chromium-')}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


class ExplorerPage:
    """The explorer at `address` in `driver`."""

    def __init__(self, driver, address: str, timeout: float = 60.0):
        self.driver, self.address, self.timeout = driver, address, timeout

    def open(self) -> "ExplorerPage":
        self.driver.get(self.address)
        self._wait(lambda: self.driver.execute_script("return window.explorer && window.explorer.ready"))
        return self.wait_idle()

    def _wait(self, condition):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.01)
        raise TimeoutError(f"the explorer page did not settle in {self.timeout} s")

    def wait_idle(self) -> "ExplorerPage":
        """Waits until no request is in flight and the slider has drawn its last move."""
        self._wait(lambda: self.driver.execute_script(
            "return window.explorer.pending === 0 && !document.getElementById('status').classList.contains('busy')"
            " && window.explorer.idle()"))
        return self

    def element(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def type(self, element_id: str, words: str) -> None:
        field = self.element(element_id)
        field.clear()
        field.send_keys(words)

    def show(self, sentence: str) -> "ExplorerPage":
        self.type("sentence", sentence)
        self.element("show").click()
        return self.wait_idle()

    def walk(self, sentence_a: str, sentence_b: str, points: int = 9) -> "ExplorerPage":
        self.type("sentence-a", sentence_a)
        self.type("sentence-b", sentence_b)
        self.type("points", str(points))
        self.element("walk").click()
        return self.wait_idle()

    def slide(self, alpha: float) -> "ExplorerPage":
        """Moves the slider to `alpha` as a drag does: the value changes and `input` fires."""
        self.driver.execute_script(
            "const s = document.getElementById('alpha'); s.value = arguments[0];"
            " s.dispatchEvent(new Event('input', {bubbles: true}));", f"{alpha:.2f}")
        return self.wait_idle()

    def hover_path_point(self, index: int) -> "ExplorerPage":
        """Rests the pointer on point `index` of the model's path on the map (its neighbours show)."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        points = self.driver.find_elements(By.CSS_SELECTOR, "#map circle.point.best")
        ActionChains(self.driver).move_to_element(points[index]).perform()
        return self.wait_idle()

    def text(self, element_id: str) -> str:
        return self.element(element_id).text

    def path(self, element_id: str) -> list[str]:
        """The sentences of a path list (`path-linear`, `path-slerp`, `path-best`)."""
        return self.driver.execute_script(
            "return Array.from(document.getElementById(arguments[0]).children).map(li => li.dataset.sentence);",
            element_id)

    def error(self) -> str:
        """The message shown for the last failed action ("" when none is shown)."""
        return self.driver.execute_script(
            "const box = document.getElementById('error'); return box.hidden ? '' : box.textContent;")

    def timings(self) -> list[dict]:
        """`[{"name", "ms"}]`: how long each action took from the person's input to the drawn answer."""
        return self.driver.execute_script("return window.explorer.timings;")

    def screenshot(self, path: str) -> None:
        """The visible page, as a PNG file."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.driver.save_screenshot(path)

    def element_screenshot(self, element_id: str, path: str) -> None:
        """One part of the page (e.g. `map-view`), as a PNG file."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.element(element_id).screenshot(path)
