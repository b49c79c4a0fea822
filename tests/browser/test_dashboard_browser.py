"""A real browser: ``idds dashboard`` on a free port, headless Chromium loads each page.

Screenshots go to ``$IDDS_TEST_ARTIFACTS/browser`` (``test-artifacts/browser`` by default).
Skipped, saying why, where Chromium, its driver or selenium is missing (``.ci/run`` installs
Chromium from Debian).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpo
from dashboard.navigation import _exists
from gpu_sites.pilot import free_port
from idds.config import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
TESTS = str(ROOT / "tests")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("IDDS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
#: (URL path, text that must appear once the page has rendered).
PAGES = [
    ("", ["Studies (0 active)", "By state", "Recent failures", "Running now"]),
    ("studies", ["Name contains", "Open a study by its name", "web-demo"]),
    ("studies?study=web-demo",
     ["Study web-demo", "Optimisation history", "Parallel coordinates", "Best (trial", "A trial"]),
    ("toys", ["Toy scans", "web-scan", "Open a scan by its name"]),
    ("toys?scan=web-scan", ["Toy scan web-scan", "Converged", "Limits", "Points"]),
    ("workflows", ["Workflows", "web-flow", "Open a workflow by its name"]),
    ("workflows?workflow=web-flow",
     ["Workflow web-flow", "Nodes", "A node's logs", "stderr of broken"]),
    ("carousel", ["Policies compared", "web-c", "One policy so far"]),
    ("carousel?carousel=web-c", ["Carousel web-c", "Released to processing"]),
]  # fmt: skip
if _exists("gpu_sites"):  # the Sites page shows where gpu_sites is installed
    PAGES.append(("sites", ["Per site", "Per study, workflow, scan, carousel"]))


@contextlib.contextmanager
def _dashboard(url: str, base: Path) -> Iterator[str]:
    """``idds dashboard`` on ``url`` as a user starts it (without the tests' PYTHONPATH, nor a
    token of its own); yields its address."""
    port = free_port()
    log = (base / "dashboard.log").open("w")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IDDS_TOKEN")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code (not the tests' modules)
    proc = subprocess.Popen(
        [sys.executable, "-m", "idds", "dashboard", "--db", url, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=base, env=env,
    )  # fmt: skip
    try:
        _wait_healthy(port, proc, base / "dashboard.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(chromium, ray_address, tmp_path_factory):
    """``idds dashboard`` serving a database that holds real studies (one with pruned
    trials) and one of each capability; yields its address and the database's settings."""
    base = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{base / 'idds.db'}"
    settings = Settings(db_url=url, ray_address=ray_address, work_dir=base / "work")
    hpo.Study(settings=settings, name="web-demo", objective="objectives:quadratic",
              space={"x": {"type": "float", "low": -2.0, "high": 2.0}}, max_points=6,
              parallel=2, proposer="optuna:random", seed=1, pythonpath=[TESTS],
              ).optimize(progress=False)  # fmt: skip
    hpo.Study(settings=settings, name="web-pruned", objective="objectives:pruned_above",
              space={"x": {"type": "float", "low": -1.0, "high": 1.0}}, max_points=8,
              parallel=2, proposer="optuna:random", seed=2, pythonpath=[TESTS],
              ).optimize(progress=False)  # fmt: skip
    _seed_capabilities(settings)
    with _dashboard(url, base) as address:
        yield address, settings


@pytest.fixture(scope="module")
def server(served):
    return served[0]


def _seed_capabilities(settings: Settings) -> None:
    """A small toy scan, a workflow whose node "broken" fails, a live carousel."""
    from carousel import load_campaign_file, run_live
    from dag import Workflow
    from toys import ToyScan

    ToyScan(settings=settings, name="web-scan",
            workspace=str(ROOT / "examples/toys/low_count.json"), range=[0, 4], toys=20,
            batch_size=20, points=3, max_steps=1, tolerance=0.5, seed=5).run(progress=False)  # fmt: skip
    Workflow({"name": "web-flow", "nodes": [
        {"name": "make", "command": ["sh", "-c", "printf '[1, 2]' > output.json"]},
        {"name": "broken", "command": ["sh", "-c", "echo oops >&2; exit 3"], "max_attempts": 1,
         "after": ["make"]},
    ]}, settings=settings).run()  # fmt: skip
    Workflow({"name": "web-wide", "parallel": 8, "nodes": [
        {"name": "make", "command": ["sh", "-c", "printf 1 > output.json"]},
        {"name": "fan", "command": ["sh", "-c", "printf 2 > output.json"], "foreach": "range(45)",
         "after": ["make"]},
        {"name": "gather", "command": ["sh", "-c", "printf 3 > output.json"], "after": ["fan"]},
    ]}, settings=settings).run()  # fmt: skip
    spec = load_campaign_file(ROOT / "examples/carousel/small.yaml").scaled(8)
    run_live(spec.replace(name="web-c"), settings, policy="file-level", speedup=20000)


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"idds dashboard exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"idds dashboard did not answer in 90 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser(server, chromium):
    return chromium


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium driven by selenium."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip(f"no Chromium ({CHROMIUM}) or chromedriver ({DRIVER}): "
                    "apt-get install chromium chromium-driver")  # fmt: skip
    pytest.importorskip("selenium", reason="the browser test drives Chromium with selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--window-size=1400,1800"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.mark.parametrize(("path", "expected"), PAGES)
def test_page_renders_its_content_without_an_error_box(server, browser, path, expected):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/{path}")

    def rendered(driver) -> bool:
        text = driver.find_element(By.TAG_NAME, "body").text
        return all(e in text for e in expected)

    try:
        WebDriverWait(browser, 60).until(rendered)
        time.sleep(2.0)  # figures and tables finish drawing
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = path.replace("?", "-").replace("=", "-") or "overview"
        browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    assert browser.title == "iDDS dashboard"
    for test_id in ("stException", "stAlertContentError"):
        boxes = browser.find_elements(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')
        assert not boxes, [b.text for b in boxes]


@pytest.fixture(scope="module")
def guarded(chromium, tmp_path_factory):
    """``idds dashboard`` on a database with registered users: alice (admin, who owns study
    "alices") and bob. Yields the URL and bob's token."""
    from dataclasses import replace

    from idds import auth
    from idds.db import connect

    base = tmp_path_factory.mktemp("guarded")
    url = f"sqlite:///{base / 'idds.db'}"
    settings = Settings(db_url=url, work_dir=base / "work")
    engine = connect(url)
    alice = auth.add_user(engine, settings, "alice")
    bob = auth.add_user(engine, replace(settings, token=alice), "bob")
    engine.dispose()
    hpo.Study(settings=replace(settings, token=alice), name="alices",
              objective="objectives:quadratic", space={"x": {"type": "float", "low": 0, "high": 1}},
              max_points=4, pythonpath=[TESTS]).create()  # fmt: skip
    with _dashboard(url, base) as address:
        yield address, bob


def test_a_dashboard_with_users_asks_for_a_token_and_shows_others_work_read_only(guarded, chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, bob = guarded

    def body() -> str:
        return chromium.find_element(By.TAG_NAME, "body").text

    def shows(*texts: str):
        try:
            WebDriverWait(browser, 60).until(lambda d: all(t in body() for t in texts))
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            chromium.save_screenshot(str(ARTIFACTS / "sign-in.png"))

    def sign_in() -> None:
        """Click Sign in, unless the Enter key's submit has redrawn the form already."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )

        try:
            chromium.find_element(By.XPATH, "//button[.//p[text()='Sign in']]").click()
        except (NoSuchElementException, StaleElementReferenceException):
            pass

    chromium.get(f"{url}/studies?study=alices")
    shows("Token", "Sign in")
    assert "alices" not in body()  # nothing of the database before signing in
    field = chromium.find_element(By.CSS_SELECTOR, "input[type=password]")
    field.send_keys("idds_not-a-token", Keys.ENTER)
    sign_in()
    shows("not the token of a user")
    field = chromium.find_element(By.CSS_SELECTOR, "input[type=password]")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)  # React inputs ignore selenium's clear()
    field.send_keys(bob, Keys.ENTER)
    sign_in()
    shows("Signed in as bob", "Study alices")  # the page asked for, once signed in
    chromium.find_element(By.XPATH, "//*[text()='Actions: cancel, enqueue a point']").click()
    shows("Read-only: the study is alice's")
    chromium.save_screenshot(str(ARTIFACTS / "read-only.png"))
    assert not chromium.find_elements(By.XPATH, "//button[.//p[text()='Cancel the study']]")
    chromium.find_element(By.XPATH, "//button[.//p[text()='Sign out']]").click()
    shows("Token")
    assert "Study alices" not in body()


def _above_the_fold(driver, element) -> bool:
    """Whether ``element`` is drawn inside the window without scrolling."""
    top, bottom = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.top, r.bottom];", element
    )
    return 0 <= top and bottom <= driver.execute_script("return window.innerHeight")


def test_clicking_a_study_name_opens_its_page_above_the_fold_with_its_pruned_count(served, browser):
    """At 1400x900, as a person sees it: the name in the list is a link; its page's header
    and its trial counts (pruned included) are in view without scrolling."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, settings = served
    pruned = sum(t.pruned for t in hpo.load_study("web-pruned", settings=settings).trials)
    assert pruned, "the seeded study has pruned trials"
    browser.set_window_size(1400, 900)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        browser.get(f"{server}/studies")
        link = WebDriverWait(browser, 60).until(
            lambda d: d.find_element(By.LINK_TEXT, "web-pruned")
        )
        browser.save_screenshot(str(ARTIFACTS / "studies-list-links.png"))
        link.click()
        header = WebDriverWait(browser, 60).until(
            lambda d: d.find_element(By.XPATH, "//h2[contains(., 'Study web-pruned')]")
        )
        WebDriverWait(browser, 60).until(
            lambda d: "Pruned" in d.find_element(By.TAG_NAME, "body").text
        )
        time.sleep(2.0)  # the history finishes drawing
        browser.save_screenshot(str(ARTIFACTS / "study-page-from-link.png"))
        assert browser.current_url.endswith("/studies?study=web-pruned")
        assert _above_the_fold(browser, header)
        metric = browser.find_element(
            By.XPATH, "//div[@data-testid='stMetric'][.//*[normalize-space()='Pruned']]"
        )
        assert _above_the_fold(browser, metric)
        value = metric.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text
        assert value == str(pruned)
        assert f"pruned ({pruned})" in browser.page_source  # counted in the history's legend
    finally:
        browser.set_window_size(1400, 1800)


def test_a_wide_workflow_is_drawn_as_boxes_whose_labels_do_not_overlap(server, browser):
    """47 tasks (a fan-out of 45 between two nodes) read as three labelled boxes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/workflows?workflow=web-wide")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.XPATH, "//*[name()='text'][contains(., 'fan (45 tasks)')]")
    )
    time.sleep(1.0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "workflow-grouped.png"))
    labels = browser.find_elements(By.CSS_SELECTOR, ".textpoint text")
    assert sorted(e.text for e in labels) == ["fan (45 tasks)", "gather (1 task)", "make (1 task)"]
    boxes = [browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];",
        e) for e in labels]  # fmt: skip
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, (a, b)
    assert "Graph: 48 nodes (47 tasks) in 3 groups" in browser.page_source
