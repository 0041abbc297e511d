"""A real `echotemporal serve` process on a free loopback port, used over HTTP and through the review
page in headless Chromium (selenium): upload, see the curve, move the frame slider, download."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from echotemporal.io import read_sequence, write_sequence  # noqa: E402
from echotemporal.phantoms import corrupt_sequence, generate_sequence  # noqa: E402
from echotemporal.serve.launch import ServerStartError, spawn_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """``python -m echotemporal.cli serve`` on a free port; stopped (Ctrl-C) after the module."""
    tmp = tmp_path_factory.mktemp("server-tmp")
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = open(tmp.parent / "server.log", "wb")  # noqa: SIM115
    try:
        proc, url = spawn_server(["--workers", "1"], env=env, log=log, cwd=ROOT, timeout_s=60)
    except ServerStartError as exc:
        pytest.fail(f"{exc}\n{(tmp.parent / 'server.log').read_text()}")
    yield url, proc, tmp
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert list(tmp.glob("echotemporal-serve-*")) == []  # the server's temporary folder went with it


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(11)
    phantom = generate_sequence(rng, n_frames=12, image_shape=(192, 160))
    corrupted, _ = corrupt_sequence(phantom.labels, phantom.spacing_mm, rng, kinds=("contraction", "dilation"), n_corruptions=2)
    return write_sequence(tmp_path_factory.mktemp("upload") / "phantom_4CH.nii.gz", corrupted, spacing_mm=phantom.spacing_mm)


def test_real_server_round_trip(server, sequence: Path) -> None:
    url, proc, tmp = server
    r = httpx.post(f"{url}/v1/jobs", files={"sequence": (sequence.name, sequence.read_bytes())}, timeout=30)
    assert r.status_code == 202
    status_url = r.json()["status_url"]
    assert status_url.startswith(url)
    for _ in range(600):
        status = httpx.get(status_url).json()
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "done", status
    labels = httpx.get(status["results"]["labels.nii.gz"])
    assert labels.status_code == 200 and labels.content[:2] == b"\x1f\x8b"
    assert httpx.delete(status_url).status_code == 200
    assert httpx.get(status_url).status_code == 404
    assert list(tmp.glob("echotemporal-serve-*/req-*")) == []  # the job's private folder is gone


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,1300"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_review_page_in_chromium(server, sequence: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = server
    browser = _chrome()
    try:
        browser.get(url + "/")
        browser.find_element(By.ID, "sequence").send_keys(str(sequence))
        browser.find_element(By.ID, "submit").click()
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.find_element(By.ID, "results").is_displayed())
        assert browser.find_element(By.ID, "status").text.startswith("done in")
        # the curve: both colours drawn on the canvas
        colours = browser.execute_script(
            """const c = document.getElementById('curve'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               let before = 0, after = 0;
               for (let i = 0; i < d.length; i += 4) {
                 if (d[i] === 0xd9 && d[i+1] === 0x5f && d[i+2] === 0x02) before++;
                 if (d[i] === 0x1b && d[i+1] === 0x9e && d[i+2] === 0x77) after++;
               }
               return [before, after];"""
        )
        assert colours[0] > 50 and colours[1] > 50, colours
        wait.until(lambda b: b.execute_script("return state.contours !== null"))
        slider = browser.find_element(By.ID, "frame-slider")
        assert slider.get_attribute("max") == "11"
        start = int(browser.find_element(By.ID, "frame-number").text)
        slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        assert int(browser.find_element(By.ID, "frame-number").text) == start + 2
        # Frames read from 1, like the Info cfg: the slider's 0-based value plus one, ED/ES likewise.
        assert int(browser.find_element(By.ID, "frame-number").text) == int(slider.get_attribute("value")) + 1
        ed_row = browser.find_elements(By.CSS_SELECTOR, "#indices tbody tr")[4].find_elements(By.TAG_NAME, "td")
        assert ed_row[0].text == "ED frame (from 1)"
        assert int(ed_row[2].text) == browser.execute_script("return state.summary.ed_frame") + 1
        lit = browser.execute_script(
            """const c = document.getElementById('frame-canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 120) n++; return n;"""
        )
        assert lit > 500  # contours and filled regions over the dark background
        rows = browser.find_elements(By.CSS_SELECTOR, "#indices tbody tr")
        assert rows[2].find_elements(By.TAG_NAME, "td")[0].text == "EF (%)"
        link = browser.find_element(By.LINK_TEXT, "labels.nii.gz").get_attribute("href")
        download = httpx.get(link)
        assert download.status_code == 200
        (tmp_path / "downloaded.nii.gz").write_bytes(download.content)
        labels = read_sequence(tmp_path / "downloaded.nii.gz").labels
        assert labels.shape == (12, 192, 160) and set(np.unique(labels)) <= {0, 1, 2, 3}
        shot = Path(os.environ.get("ECHOTEMPORAL_SCREENSHOT", tmp_path / "review.png"))
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        browser.quit()
