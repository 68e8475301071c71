"""The web page with many photos at once, in headless Chromium: a table of counts with the photos, review flags,
typed expectations with mismatches highlighted, and a counts.csv download (docs/design.md §11).

The page is the twin's own (``bincount up``'s ``web_pages``), served by the local API in front of the Lambda and the
trained artifact behind ``bincount serve``. Like the single-photo test, it needs chromium and chromedriver (CI fails
without them, a developer machine skips).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bincount.cli.up import web_pages
from bincount.local.api import LocalApi, load_handler, load_lambda_module
from bincount.paths import PROJECT_ROOT
from bincount.serving.reconcile import COLUMNS
from tests.support.serving import ENDPOINT, PHOTOS, set_aws_env

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
SHIFT = PHOTOS[:4]


@pytest.fixture(scope="session")
def chrome() -> tuple[str, str]:
    """chromium and chromedriver; asked for first, so a machine without them skips before training a model."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: scripts/setup.sh installs chromium and chromedriver")
        pytest.skip("no chromium/chromedriver here (scripts/setup.sh installs them when run as root)")
    return chromium, driver


@pytest.fixture
def browser(chrome: tuple[str, str], tmp_path: Path) -> Iterator[object]:
    chromium, driver = chrome
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path)})
    driver_ = webdriver.Chrome(service=Service(driver), options=options)
    yield driver_
    driver_.quit()


@pytest.fixture
def api(sagemaker, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalApi]:
    set_aws_env(monkeypatch, sagemaker.url)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    module = load_lambda_module("api")
    module.runtime_client.cache_clear()
    module.sagemaker_client.cache_clear()
    with LocalApi(load_handler(), pages=web_pages()) as server:
        yield server


def test_many_photos_make_a_table_with_review_flags_mismatches_and_a_csv(chrome, browser, api, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{api.url}/")
    browser.find_element(By.ID, "file").send_keys("\n".join(str(p) for p in SHIFT))
    wait = WebDriverWait(browser, 120)
    wait.until(lambda b: b.find_element(By.ID, "batch").is_displayed())
    wait.until(lambda b: all(r.find_element(By.CSS_SELECTOR, ".count").text for r in _rows(b)))
    rows = _rows(browser)
    assert [r.get_attribute("data-id") for r in rows] == [p.stem for p in SHIFT]
    assert all(r.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("blob:") for r in rows)
    assert not browser.find_element(By.ID, "result").is_displayed()

    first = rows[0]
    counted = int(first.find_element(By.CSS_SELECTOR, ".count").text)
    first.find_element(By.CSS_SELECTOR, "input.expected").send_keys(str(counted % 5 + 1))  # a wrong expectation
    rows[1].find_element(By.CSS_SELECTOR, "input.expected").send_keys(
        rows[1].find_element(By.CSS_SELECTOR, ".count").text
    )
    assert "mismatch" in first.get_attribute("class")
    assert first.find_element(By.CSS_SELECTOR, ".match").text == "no"
    assert (
        "mismatch" not in rows[1].get_attribute("class")
        and rows[1].find_element(By.CSS_SELECTOR, ".match").text == "yes"
    )
    assert "1/2 match, 1 mismatches" in browser.find_element(By.ID, "batch-summary").text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "web_batch.png"))

    browser.find_element(By.ID, "download").click()
    target = tmp_path / "counts.csv"
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    reader = csv.DictReader(io.StringIO(target.read_text()))
    assert tuple(reader.fieldnames) == COLUMNS
    table = list(reader)
    assert [r["id"] for r in table] == [p.stem for p in SHIFT]
    assert table[0]["match"] == "false" and table[1]["match"] == "true" and table[2]["match"] == ""
    assert {r["needs_review"] for r in table} <= {"true", "false"}


def _rows(browser) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "#batch-rows tr")
