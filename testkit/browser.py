"""Debian's headless chromium, driven by selenium, for the serve page's tests."""
from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path

from .apt import apt_install

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


_CHROMIUM_INSTALL = threading.Lock()


def ensure_chromium() -> None:
    """Debian's chromium and chromium-driver, installed with apt-get where they are missing (the
    browser test's system packages come from the project's own set-up, not from the user). A
    second caller waits for an install under way (the suite starts one in the background)."""
    import os

    with _CHROMIUM_INSTALL:
        if CHROMIUM.exists() and CHROMEDRIVER.exists():
            return
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise RuntimeError("the browser test needs Debian's chromium and chromium-driver: "
                               "sudo apt-get install chromium chromium-driver")
        apt_install("chromium", "chromium-driver")


@contextlib.contextmanager
def headless_chromium(fake_microphone: Path | None = None):
    """A selenium driver of headless Chromium; ``fake_microphone``: a WAV file it hears (looped)
    when a page records, with the permission granted."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    if fake_microphone is not None:
        for flag in ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={fake_microphone}"):
            options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
