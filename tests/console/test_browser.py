"""The console in a real browser: Debian's headless chromium driven by Selenium through
chromedriver, against a real `cargobay serve` holding images pushed by skopeo. The tests save
screenshots of the main pages to docs/screenshots/ (the README shows them)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import allow, client, make_user, pull, push, unique
from imagebuilder import build_image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# The test run's artifacts (build/ is git-ignored); CARGOBAY_SCREENSHOTS=docs/screenshots
# refreshes the copies the README shows.
SCREENSHOTS = Path(
    os.environ.get("CARGOBAY_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "build" / "screenshots"
)
WAIT = 60  # seconds; the machine is shared and slow, never a timing assertion
KEEP_ONE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "keep the newest image",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            }
        ]
    },
    indent=2,
)

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition):
    return WebDriverWait(driver, WAIT).until(condition)


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 120, 600), 2400))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def sign_in(driver, server, key: str, secret: str) -> None:
    """With the keyboard only: type the key id, Tab to the secret, Enter to submit."""
    driver.get(f"{server.url}/console/")
    field = wait(driver, ec.presence_of_element_located((By.NAME, "access_key_id")))
    field.send_keys(key)
    field.send_keys(Keys.TAB)
    driver.switch_to.active_element.send_keys(secret)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait(driver, ec.presence_of_element_located((By.ID, "signout")))


def csp_violations(driver) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]


def test_admin_journey(browser, console_server, pushed, tmp) -> None:
    pull(console_server, f"{pushed}:latest", tmp / "pulled")  # bytes out for the chart
    key, secret = console_server.credentials
    sign_in(browser, console_server, key, secret)
    assert "Repositories" in browser.title
    assert browser.get_cookie("cargobay_console")["httpOnly"] is True
    assert browser.execute_script("return document.cookie") == ""  # nothing readable by JS

    # The repository skopeo pushed, found through the prefix search.
    search = browser.find_element(By.ID, "prefix")
    search.send_keys(pushed.split("/")[0] + "/")
    search.send_keys(Keys.ENTER)
    link = wait(browser, ec.element_to_be_clickable((By.LINK_TEXT, pushed)))
    screenshot(browser, "repositories")
    link.click()
    table = wait(browser, ec.presence_of_element_located((By.ID, "images")))
    assert "latest" in table.text and "1.0" in table.text
    screenshot(browser, "repository")

    # An image: manifest and config, layers.
    browser.find_element(By.CSS_SELECTOR, "#images a.digest").click()
    manifest = wait(browser, ec.presence_of_element_located((By.ID, "manifest-json")))
    assert '"layers"' in manifest.text
    assert '"rootfs"' in browser.find_element(By.ID, "config-json").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#layers tbody tr")) == 2
    screenshot(browser, "image")

    # Lifecycle: edit, preview (nothing saved), then save. A newer image first, so keeping
    # one image expires the older.
    push(console_server, build_image(tmp / "newer", [3000]), f"{pushed}:2.0")
    browser.get(f"{console_server.url}/console/settings?name={pushed}")
    editor = wait(browser, ec.presence_of_element_located((By.ID, "lifecycle-text")))
    editor.clear()
    editor.send_keys(KEEP_ONE)
    browser.find_element(By.ID, "lifecycle-preview").click()
    results = wait(browser, ec.presence_of_element_located((By.ID, "lifecycle-preview-results")))
    assert "Preview: 1 image(s) would expire" in results.text
    assert "latest" in results.text and "2.0" not in results.text
    ecr = client(console_server)
    with pytest.raises(ecr.exceptions.LifecyclePolicyNotFoundException):
        ecr.get_lifecycle_policy(repositoryName=pushed)
    screenshot(browser, "settings")
    browser.find_element(By.ID, "lifecycle-save").click()
    wait(browser, ec.presence_of_element_located((By.ID, "saved")))
    stored = ecr.get_lifecycle_policy(repositoryName=pushed)["lifecyclePolicyText"]
    assert json.loads(stored)["rules"][0]["description"] == "keep the newest image"

    # Usage: the page fetches usage.json and static/console.js draws an SVG. Workers flush
    # bytes out every few seconds, so the pull's bytes may take a reload or two to show.
    deadline = time.monotonic() + 60
    while True:
        browser.get(f"{console_server.url}/console/usage")
        svg = wait(browser, ec.presence_of_element_located((By.ID, "usage-svg")))
        points = svg.find_element(By.CSS_SELECTOR, "polyline.stored").get_attribute("points")
        assert len(points.split()) == 30
        bars = svg.find_elements(By.CSS_SELECTOR, "rect.out")
        assert len(bars) == 30
        if any(int(bar.get_attribute("data-bytes")) > 0 for bar in bars):
            break
        assert time.monotonic() < deadline, "the pull's bytes out never reached the chart"
        time.sleep(1)
    screenshot(browser, "usage")

    browser.get(f"{console_server.url}/console/registry")
    wait(browser, ec.presence_of_element_located((By.ID, "users-table")))
    screenshot(browser, "registry")
    assert csp_violations(browser) == []

    # Sign out: back to the sign-in form, and the pages need signing in again.
    browser.find_element(By.ID, "signout").click()
    wait(browser, ec.presence_of_element_located((By.NAME, "secret_access_key")))
    browser.get(f"{console_server.url}/console/repositories")
    assert browser.find_elements(By.NAME, "access_key_id")
    assert not browser.find_elements(By.ID, "signout")


def test_read_only_user_sees_no_edit_controls(browser, console_server, pushed, tmp) -> None:
    key, secret = make_user(
        console_server,
        unique("viewer"),
        allow(
            "ecr:DescribeRepositories",
            "ecr:DescribeImages",
            "ecr:BatchGetImage",
            "ecr:GetLifecyclePolicy",
            "ecr:GetRepositoryPolicy",
        ),
        tmp=tmp,
    )
    sign_in(browser, console_server, key, secret)
    browser.get(f"{console_server.url}/console/settings?name={pushed}")
    wait(browser, ec.presence_of_element_located((By.ID, "lifecycle")))
    assert not browser.find_elements(By.TAG_NAME, "textarea")
    assert not browser.find_elements(By.ID, "lifecycle-save")
    assert not browser.find_elements(By.ID, "policy-save")
    assert not browser.find_elements(By.CSS_SELECTOR, "form[action^='/console/settings']")


def test_denied_page_shows_the_denial(browser, console_server, pushed, tmp) -> None:
    key, secret = make_user(
        console_server, unique("lister"), allow("ecr:DescribeRepositories"), tmp=tmp
    )
    sign_in(browser, console_server, key, secret)
    browser.get(f"{console_server.url}/console/repository?name={pushed}")
    message = wait(browser, ec.presence_of_element_located((By.ID, "error-message")))
    assert "ecr:DescribeImages" in message.text
    assert "Access denied" in browser.title


def test_phone_width(browser, console_server, pushed) -> None:
    browser.set_window_size(390, 844)
    sign_in(browser, console_server, *console_server.credentials)
    browser.get(f"{console_server.url}/console/repository?name={pushed}")
    wait(browser, ec.presence_of_element_located((By.ID, "images")))
    # The page itself never scrolls sideways (wide tables scroll inside their box).
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    browser.save_screenshot(str(SCREENSHOTS / "repository-phone.png"))


def test_region_picker_switches_every_page(browser, regional) -> None:
    """Choosing a region in the header's picker (its script submits the form on change)
    shows that region's repositories, on the page it was chosen from and on the next ones."""
    server, home, away = regional
    sign_in(browser, server, *server.credentials)
    browser.get(f"{server.url}/console/repositories?prefix=regional/")
    table = wait(browser, ec.presence_of_element_located((By.TAG_NAME, "table")))
    assert home in table.text and away not in table.text
    picker = Select(browser.find_element(By.ID, "region-picker"))
    assert picker.first_selected_option.text == "us-east-1"
    picker.select_by_value("eu-west-1")
    wait(browser, ec.text_to_be_present_in_element((By.TAG_NAME, "table"), away))
    assert browser.current_url.endswith("/console/repositories?prefix=regional/")
    assert home not in browser.find_element(By.TAG_NAME, "table").text
    browser.find_element(By.LINK_TEXT, away).click()
    uri = wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "dl.facts code")))
    assert ".dkr.ecr.eu-west-1." in uri.text
    selected = Select(browser.find_element(By.ID, "region-picker")).first_selected_option
    assert selected.text == "eu-west-1"
    assert csp_violations(browser) == []
