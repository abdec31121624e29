"""The web view in a real browser: Debian's headless Chromium driven by selenium through chromedriver.

Screenshots go to ``$WIREWATCH_ARTIFACTS`` (else pytest's tmp dir). Skipped, with the reason, when
Chromium, chromedriver or selenium is missing (``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.system.web_support import LiveDaemon, png_bytes, rods_image, start_live, stop_live, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER and HAVE_SELENIUM),
                                reason="needs Debian's chromium + chromium-driver and the selenium package")


def artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("WIREWATCH_ARTIFACTS") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wirewatch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,860"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


READ_PAGE = """
const q = (id) => document.getElementById(id);
const values = {};
for (const td of document.querySelectorAll('#stats td.value')) values[td.id.slice(2)] = td.textContent;
return {frame: q('latest-frame').textContent, values: values, overlay: q('overlay').dataset.frame,
        overlayWidth: q('overlay').naturalWidth, conn: q('conn').textContent, fps: q('fps').textContent,
        processed: q('processed').textContent, sparkPoints: document.querySelectorAll('#s-particle_count polyline').length
          ? q('s-particle_count').querySelector('polyline').getAttribute('points').split(' ').length : 0};
"""


def test_live_page_follows_the_stream_and_matches_the_record(tmp_path: Path, browser: Any) -> None:
    live = start_live(tmp_path, rate=10.0)
    try:
        wait_for(lambda: live.processed >= 3, 90, "3 processed frames")
        browser.get(live.url + "/")
        page: dict[str, Any] = {}

        def shows_frames() -> bool:
            page.update(browser.execute_script(READ_PAGE))
            return page["frame"].isdigit() and bool(page["overlay"]) and page["overlayWidth"] > 0
        wait_for(shows_frames, 60, "the page to show a frame and its overlay")
        first = dict(page)
        assert first["conn"] == "live" and first["overlayWidth"] == 256
        check_numbers_match_record(live, first)
        wait_for(lambda: shows_frames() and int(page["frame"]) >= int(first["frame"]) + 5
                 and int(page["overlay"]) > int(first["overlay"]), 60, "the numbers and overlay to move on")
        check_numbers_match_record(live, page)
        assert page["sparkPoints"] >= 5 and float(page["fps"]) > 0 and int(page["processed"]) > 0
        browser.save_screenshot(str(artifacts(tmp_path) / "web-live.png"))
        assert console_errors(browser) == []
    finally:
        stop_live(live)


def check_numbers_match_record(live: LiveDaemon, page: dict[str, Any]) -> None:
    frame = int(page["frame"])
    wait_for(lambda: any(r["frame"] == frame for r in live.records()), 10, f"record line of frame {frame}")
    stats = next(r for r in live.records() if r["frame"] == frame)["stats"]
    assert int(page["values"]["particle_count"]) == stats["particle_count"]
    for name in ("coverage_fraction", "length_px_mean", "width_px_mean", "orientation_order"):
        shown, true = page["values"][name], stats[name]
        if true is None:
            assert shown == "–"
        else:
            assert float(shown) == pytest.approx(true, rel=2e-3, abs=1e-4), name


def test_upload_page_shows_overlay_table_and_sorts(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from wirewatch.segment import load_segmenter
    from wirewatch.web import HttpServer, WebApp

    image = tmp_path / "rods.png"
    image.write_bytes(png_bytes(rods_image()))
    from prometheus_client import CollectorRegistry

    server = HttpServer(CollectorRegistry(), port=0,
                        app=WebApp(segmenter=load_segmenter("watershed"), backend="watershed"))
    try:
        browser.get(server.url + "/segment")
        browser.find_element(By.ID, "file").send_keys(str(image))
        rows = lambda: browser.find_elements(By.CSS_SELECTOR, "#particles tbody tr")  # noqa: E731
        wait_for(lambda: len(rows()) == 3, 120, "the particle table")
        overlay = browser.find_element(By.ID, "seg-overlay")
        assert overlay.is_displayed() and browser.execute_script("return arguments[0].naturalWidth", overlay) == 128
        wait_for(lambda: browser.execute_script("return document.getElementById('histograms').naturalWidth") > 0,
                 30, "the histograms")
        count = browser.execute_script(
            "return document.querySelector('#frame-stats tr[data-stat=particle_count] td:last-child').textContent")
        assert count == "3"
        header = browser.find_element(By.CSS_SELECTOR, "#particles th[data-key=length_px]")
        col = ["id", "score", "area_px", "length_px"].index("length_px")
        header.click()
        lengths = [float(r.find_elements(By.TAG_NAME, "td")[col].text) for r in rows()]
        assert lengths == sorted(lengths) and lengths == pytest.approx([40, 70, 80], abs=1.5)
        browser.find_element(By.CSS_SELECTOR, "#particles th[data-key=length_px]").click()
        lengths = [float(r.find_elements(By.TAG_NAME, "td")[col].text) for r in rows()]
        assert lengths == sorted(lengths, reverse=True)
        browser.execute_script("""window.__csv = null;
            URL.createObjectURL = (blob) => { blob.text().then((t) => { window.__csv = t; }); return "data:,"; };""")
        browser.find_element(By.ID, "csv").click()
        wait_for(lambda: browser.execute_script("return window.__csv") is not None, 10, "the CSV download")
        csv_text = browser.execute_script("return window.__csv")
        lines = csv_text.strip().split("\n")
        assert len(lines) == 4 and lines[0].startswith("id,score,mask_score,area_px")
        time.sleep(0.2)
        browser.save_screenshot(str(artifacts(tmp_path) / "web-segment.png"))
        assert console_errors(browser) == []
    finally:
        server.close()
