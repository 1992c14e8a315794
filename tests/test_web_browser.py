"""The web app in a real headless browser: Debian's Chromium and chromedriver (installed by .ci/run), driven
by Selenium. Screenshots go to $SMB_SCREENSHOTS if set (docs/images for docs/web.md), else to tmp_path."""
from __future__ import annotations

import base64
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smbwm.models.motion import estimate_scroll
from web_server import running_web_app

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.slow

# the canvas scaled back to one NES frame (nearest neighbour), as a PNG data URL
GRAB = """const c = document.getElementById('screen'), s = c.width / (256 * window.smb.sides);
const o = document.createElement('canvas'); o.width = 256; o.height = 240;
const x = o.getContext('2d'); x.imageSmoothingEnabled = false;
x.drawImage(c, 0, 0, 256 * s, 240 * s, 0, 0, 256, 240); return o.toDataURL('image/png');"""


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory() as profile:
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  f"--user-data-dir={profile}", "--window-size=1320,860"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def app_url():
    with running_web_app(max_games=2, idle_timeout_s=120) as url:
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("SMB_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def wait(driver, js: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {js}")
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {js}; page status {driver.execute_script('return window.smb')}")


def grab(driver) -> np.ndarray:
    url = driver.execute_script(GRAB)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def start(driver, url: str, button: str) -> None:
    driver.find_element("id", button).click()
    wait(driver, "window.smb.status === 'playing' && window.smb.framesDrawn > 2")


def test_play_the_dream_holding_right_scrolls_the_scene(browser, app_url, shots):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    browser.get(app_url)
    wait(browser, "document.querySelectorAll('#play-spawn option').length > 0")
    start(browser, app_url, "play-start")
    browser.find_element("id", "screen").click()
    step = lambda: browser.execute_script("return window.smb.step")  # noqa: E731
    grabs = [(step(), grab(browser))]
    ActionChains(browser).key_down(Keys.ARROW_RIGHT).perform()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0 or grabs[-1][0] - grabs[0][0] < 20:     # two seconds and 20 game steps
        grabs.append((step(), grab(browser)))
        assert time.monotonic() - t0 < 120, "the game stopped stepping"
    ActionChains(browser).key_up(Keys.ARROW_RIGHT).perform()
    time.sleep(2.5)                  # the fps shown covers the last ~2 s: let it forget the grabbing
    browser.save_screenshot(str(shots / "play.png"))
    assert browser.find_element("id", "action").text in ("right", "NOOP")
    # scroll between grabs at most two steps apart (a step scrolls < 16 px, the estimator's range)
    travel = sum(estimate_scroll(a, b) for (sa, a), (sb, b) in zip(grabs, grabs[1:]) if sb - sa <= 2)
    assert travel >= 16, f"the scene scrolled {travel} px while right was held"
    assert float(browser.find_element("id", "fps").text.split()[0]) > 0


def test_real_vs_dream_and_watching_an_agent(browser, app_url, shots):
    from selenium.webdriver.support.ui import Select
    browser.get(app_url)
    wait(browser, "document.querySelectorAll('#play-spawn option').length > 0")
    Select(browser.find_element("id", "play-world")).select_by_value("compare")
    start(browser, app_url, "play-start")
    assert browser.execute_script("return document.getElementById('screen').width") == 2 * 2 * 256
    time.sleep(1.0)
    browser.save_screenshot(str(shots / "compare.png"))
    browser.find_element("id", "tab-watch").click()
    Select(browser.find_element("id", "watch-agent")).select_by_value("scripted")
    start(browser, app_url, "watch-start")
    time.sleep(3.0)
    first = browser.execute_script("return window.smb.step")
    time.sleep(1.0)
    assert browser.execute_script("return window.smb.step") > first
    assert "right" in browser.find_element("id", "action").text          # the runner holds right
    browser.save_screenshot(str(shots / "watch.png"))
    browser.find_element("id", "stop").click()


def test_compose_a_level_see_its_picture_and_a_bad_prompt_error(browser, app_url, shots):
    from selenium.webdriver.support.ui import Select
    browser.get(app_url)
    wait(browser, "document.querySelectorAll('#compose-pipes option').length > 0")
    browser.find_element("id", "tab-make").click()
    Select(browser.find_element("id", "compose-pipes")).select_by_value("many")
    prompt = browser.find_element("id", "make-prompt")
    assert prompt.get_attribute("value").startswith("many pipes")
    width = browser.find_element("id", "make-width")
    width.clear()
    width.send_keys("60")
    browser.find_element("id", "make-go").click()
    wait(browser, "document.getElementById('make-png').naturalWidth > 0")
    assert browser.execute_script("return document.getElementById('make-png').naturalWidth") == 60 * 16
    assert len(browser.find_element("id", "make-ascii").get_attribute("textContent").splitlines()) == 14
    browser.save_screenshot(str(shots / "make.png"))
    browser.find_element("id", "make-play").click()                   # "play it": the level simulator in the canvas
    wait(browser, "window.smb.status === 'playing' && window.smb.framesDrawn > 2")
    time.sleep(1.0)
    browser.save_screenshot(str(shots / "level.png"))
    prompt.clear()
    prompt.send_keys("lots of pipes please")
    browser.find_element("id", "make-go").click()
    wait(browser, "!document.getElementById('make-error').classList.contains('hidden')")
    error = browser.find_element("id", "make-error").text
    assert "cannot read 'lots of pipes please'" in error and "\n" not in error
    assert "Traceback" not in browser.page_source
    browser.save_screenshot(str(shots / "make_error.png"))
