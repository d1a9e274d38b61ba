"""The explorer in a real browser (headless Chromium): what the page shows is what the REST API
answers, and a failing or stopped server shows as a message on a page that keeps working."""

import os
import subprocess
import sys

import pytest
from support import MODEL_NAME, ROOT, http

from serving.explorer.app import ExplorerServer
from serving.explorer.browser import ExplorerPage, chromium
from serving.launch import free_port

pytestmark = pytest.mark.slow

A, B = "the cat sat on the mat .", "i like your style ."


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def explorer(server):
    running = ExplorerServer("127.0.0.1", 0, server.rest, [MODEL_NAME], max_rows=16)
    running.start()
    yield running
    running.shutdown()
    running.server_close()


def rest(server, signature, **inputs):
    status, answer = http("POST", f"{server.rest}/v1/models/{MODEL_NAME}:predict",
                          {"signature_name": signature, "inputs": inputs})
    assert status == 200, answer
    return answer["outputs"]


def test_page_shows_what_the_rest_api_answers(server, explorer, browser, tmp_path):
    shots = os.environ.get("TFODE_SCREENSHOT_DIR") or str(tmp_path)
    page = ExplorerPage(browser, explorer.address).open()
    assert page.error() == ""
    landmarks = rest(server, "landmarks", count=[1000])["sentences"][0]
    assert browser.execute_script("return document.querySelectorAll('#map circle.landmark').length") == len(landmarks)

    page.show(A)
    assert page.text("reconstruction") == rest(server, "decode", sentences=[A])["sentences"][0]
    tokens = browser.execute_script("return Array.from(document.querySelectorAll('#probabilities text.token')).map(t => t.textContent)")
    assert tokens[:-1] == A.split()  # the token read at each t_k, as the decoder reads it, then <eos>
    page.screenshot(os.path.join(shots, "sentence.png"))

    page.walk(A, B, points=5)
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    for mode in ("linear", "slerp"):
        expected = rest(server, "interpolate", sentence_a=[A] * 5, sentence_b=[B] * 5, alpha=alphas, mode=[mode] * 5)
        assert page.path(f"path-{mode}") == expected["sentence"]
    found = rest(server, "path", sentence_a=[A], sentence_b=[B], points=[5])
    assert page.path("path-best") == found["sentences"][0]

    # The map frames what is drawn with a margin of 15 % a side (its points then span 1 / 1.3 of
    # the frame along one axis), or every landmark and point when asked (they span all of it).
    def extent(selector):
        return browser.execute_script(
            "const dots = [...document.querySelectorAll(arguments[0])], box = document.getElementById('map').viewBox.baseVal;"
            "const xs = dots.map(d => +d.getAttribute('cx')), ys = dots.map(d => +d.getAttribute('cy'));"
            "return Math.max((Math.max(...xs) - Math.min(...xs)) / (box.width - 32),"
            "                (Math.max(...ys) - Math.min(...ys)) / (box.height - 32));", selector)

    assert extent("#map circle.point") == pytest.approx(1 / 1.3)
    page.element("map-fit").click()
    assert browser.execute_script("return document.querySelectorAll('#map circle.landmark').length") == len(landmarks)
    assert extent("#map circle") == pytest.approx(1.0)
    page.element("map-fit").click()
    assert extent("#map circle.point") == pytest.approx(1 / 1.3)

    page.slide(0.3)
    at = rest(server, "interpolate", sentence_a=[A], sentence_b=[B], alpha=[0.3], mode=["linear"])
    assert page.text("alpha-sentence") == at["sentence"][0]
    page.element("mode").send_keys("slerp")  # the menu, from the keyboard
    page.wait_idle()
    at = rest(server, "interpolate", sentence_a=[A], sentence_b=[B], alpha=[0.3], mode=["slerp"])
    assert page.text("alpha-sentence") == at["sentence"][0]

    # A point of the model's path, clicked: its nearest test sentences, as `locate` answers.
    browser.execute_script("document.querySelectorAll('#map circle.point.best')[2]"
                           ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    page.wait_idle()
    nearest = rest(server, "locate", codes=[found["codes"][0][2]])
    shown = browser.execute_script("return Array.from(document.querySelectorAll('#neighbour-list li')).map(li => li.textContent)")
    assert [line.rsplit(" (", 1)[0] for line in shown] == nearest["neighbours"][0]
    page.screenshot(os.path.join(shots, "path.png"))
    assert page.error() == "" and not browser.execute_script("return window.explorer.errors")
    for name in ("sentence.png", "path.png"):
        with open(os.path.join(shots, name), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_refused_request_shows_the_servers_message_and_the_page_keeps_working(server, explorer, browser):
    page = ExplorerPage(browser, explorer.address).open()
    page.show("x" * 2000)
    assert "longer than 1024 bytes" in page.error()
    page.walk(A, "", points=3)
    assert "empty" in page.error()
    page.show(B)
    assert page.error() == ""
    assert page.text("reconstruction") == rest(server, "decode", sentences=[B])["sentences"][0]


def test_a_stopped_model_server_shows_as_a_message(browser):
    port = free_port()  # nothing listens there
    running = ExplorerServer("127.0.0.1", 0, f"127.0.0.1:{port}", [MODEL_NAME], max_rows=8)
    running.start()
    try:
        page = ExplorerPage(browser, running.address).open()
        assert "does not answer" in page.error() and str(port) in page.error()
        page.show(A)  # the page still acts, and says the same
        assert "does not answer" in page.error()
        assert browser.execute_script("return document.getElementById('sentence').value") == A
    finally:
        running.shutdown()
        running.server_close()


def test_the_command_refuses_what_does_not_apply(tmp_path):
    def explore(*flags):
        return subprocess.run([sys.executable, "-m", "serving.explorer.cli", *flags], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    missing = explore("--export-base", str(tmp_path), "--model-name", "absent")
    assert missing.returncode == 2 and "holds no model folder absent" in missing.stderr
    both = explore("--export-base", str(tmp_path), "--model-name", "m", "--max-rows", "4")
    assert both.returncode == 2 and "--max-rows applies with --server" in both.stderr
    neither = explore("--model-name", "m")
    assert neither.returncode == 2 and "--export-base" in neither.stderr
