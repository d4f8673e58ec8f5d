"""The study page in a real browser: headless Chromium driven through selenium clicks through a small study.

Needs Debian's ``chromium`` and ``chromium-driver`` and selenium (the ``test`` extra); ``.ci/run`` installs
them. Without them the test is skipped with the reason, unless ``PALETTE_REQUIRE_BROWSER=1`` (set by CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palette_cli.cli.app import app

from .test_features import needs_effnet
from .test_study import make_eval_run

CHROMIUM = os.environ.get("PALETTE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PALETTE_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1200,900"]
SECONDS = 0.4  # display time of the test study

runner = CliRunner()


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found (apt-get install chromium chromium-driver; {package} missing)"
    return None


@pytest.fixture
def browser(tmp_path):
    missing = _missing()
    if missing:
        if os.environ.get("PALETTE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser test must run here, but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 10.0, what: str = "the page"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@needs_effnet
def test_a_participant_clicks_through_the_study(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def press(key: str) -> None:
        ActionChains(browser).send_keys(key).perform()

    run_dir = make_eval_run(tmp_path, "inpaint", ("identity", "telea"))
    study = tmp_path / "study"
    r = runner.invoke(app, ["study", "make", str(run_dir), "-o", str(study), "--seconds", str(SECONDS)])
    assert r.exit_code == 0, r.output
    manifest = json.loads((study / "study.json").read_text())
    trials = {(t["original"], t["generated"]): t for t in manifest["trials"]}
    assert len(trials) == 4

    el = lambda id_: browser.find_element(By.ID, id_)  # noqa: E731
    url = (study / "index.html").as_uri() + "?seed=11"
    browser.get(url)
    assert "4" in el("intro-count").text and "0.4 seconds" in el("intro-seconds").text
    el("participant").send_keys("ann")
    el("start").click()

    def current():
        """(trial shown, side of the generated image) once the pair is on screen."""
        wait_for(lambda: el("trial").get_attribute("data-phase") == "shown", what="a pair of images")
        left = el("left-img").get_attribute("src").split("/study/")[-1]
        right = el("right-img").get_attribute("src").split("/study/")[-1]
        if (left, right) in trials:
            return trials[(left, right)], "right"
        return trials[(right, left)], "left"

    other = {"left": "right", "right": "left"}
    shown, made = [], []
    # 1: fooled, by clicking the generated image
    trial, generated = current()
    assert el("progress-text").text == "Trial 1 of 4"
    shown.append(trial["id"])
    el(generated).click()
    made.append((generated, True))
    # 2: not fooled, by key, after the pair has disappeared (the display time is enforced)
    trial, generated = current()
    assert el("progress-text").text == "Trial 2 of 4" and trial["id"] not in shown
    shown.append(trial["id"])
    wait_for(lambda: el("trial").get_attribute("data-phase") == "hidden", what="the pair to disappear")
    assert not el("left-img").is_displayed() and not el("right-img").is_displayed()
    press(Keys.ARROW_LEFT if generated == "right" else Keys.ARROW_RIGHT)
    made.append((other[generated], False))
    current()

    # a reload resumes where the participant stopped. The page's last write to localStorage and the reloaded
    # page's first read are separate messages to the browser's storage, which it does not order, so the
    # reloaded page could read the store without the last answers. A second tab on the study keeps the
    # storage in use across the reload, and shows that both answers are stored before the reload.
    participant = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(url)
    stored = f"return JSON.parse(localStorage.getItem('palette-study:{manifest['study_id']}')).answers.length"
    wait_for(lambda: browser.execute_script(stored) == 2, what="the two answers in the browser's storage")
    browser.switch_to.window(participant)
    browser.get(url)
    wait_for(lambda: el("intro").is_displayed(), what="the intro")
    assert "answered 2 of 4" in el("resume-note").text and el("start").text == "Continue"
    el("start").click()
    # 3: fooled, with the F / J keys; 4: not fooled, with the buttons below the images
    trial, generated = current()
    assert el("progress-text").text == "Trial 3 of 4" and trial["id"] not in shown
    shown.append(trial["id"])
    press("f" if generated == "left" else "j")
    made.append((generated, True))
    trial, generated = current()
    shown.append(trial["id"])
    el(f"choose-{other[generated]}").click()
    made.append((other[generated], False))

    wait_for(lambda: el("done").is_displayed(), what="the end screen")
    assert el("fool-rate").text == "50.0%" and el("fooled").text == "2" and el("answered").text == "4"
    el("download").click()
    file = wait_for(lambda: next(iter(browser.downloads.glob("answers-ann.json")), None), what="the download")
    answers = json.loads(wait_for(lambda: file.read_text() or None, what="the downloaded file"))
    assert answers["format"] == "palette-study-answers" and answers["study_id"] == manifest["study_id"]
    assert answers["participant"] == "ann" and answers["seed"] == 11 and answers["trials_total"] == 4
    assert answers["fool_rate"] == 0.5 and answers["finished"]
    assert [a["trial"] for a in answers["answers"]] == shown and sorted(shown) == sorted(
        t["id"] for t in manifest["trials"])
    assert [(a["choice"], a["fooled"]) for a in answers["answers"]] == made
    for a in answers["answers"]:
        assert (a["choice"] == a["generated_side"]) == a["fooled"] and a["response_ms"] >= 0
    # the answers score as the page said
    r = runner.invoke(app, ["study", "score", str(file), "--study", str(study), "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rates = json.loads((tmp_path / "r.json").read_text())["rates"]
    assert sum(x["fooled"] for x in rates) == 2 and sum(x["answers"] for x in rates) == 4

    # the next participant with the same seed gets the same order and sides; another seed another one
    el("new-participant").click()
    el("participant").send_keys("bob")
    el("start").click()
    first, side = current()
    assert first["id"] == shown[0] and side == made[0][0]
    orders = set()
    for seed in (1, 2, 3, 4, 5):
        browser.execute_script("localStorage.clear()")
        browser.get((study / "index.html").as_uri() + f"?seed={seed}")
        el("start").click()
        orders.add((current()[0]["id"], current()[1]))
    assert len(orders) > 1
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
