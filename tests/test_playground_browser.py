"""The playground in a real headless Chromium (Debian's `chromium` and `chromium-driver`), driven by Selenium,
against a real server and the tiny models.

Without the browser these tests skip, unless `VLM_BROWSER_TESTS=required` (as `.ci/run` sets) makes that a failure.
`VLM_UPDATE_SCREENSHOTS=1` has `test_screenshots` write the documentation's screenshots.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from vlm_router.api.app import create_app

from .conftest import ROOT, ServerThread, data_url, make_video, metric_sum, png_bytes, router_config

webdriver = pytest.importorskip("selenium.webdriver", reason="Selenium comes with the test extra: pip install -e '.[test]'")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# No first-run work, no background connections (this machine's network is closed), no GPU, no sandbox as root.
FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync --window-size=1100,900"
).split()
KEY = "sk-playground-0123456789"
WAIT_S = 120  # a first request loads its model's worker


def _browser_missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    return f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver" if missing else None


@pytest.fixture(scope="module")
def served(tiny_qwen, families) -> Iterator[ServerThread]:
    """A server for the page: the tiny Qwen2-VL as `demo`, as a one-image model and with a small image budget."""
    config = router_config(
        [
            {"name": "demo", "path": str(tiny_qwen), "defaults": {"max_tokens": 12}, "scheduler": {"max_num_seqs": 1}},
            {"name": "one-image", "path": str(tiny_qwen), "capabilities": {"max_images": 1, "video": "none"}},
            {"name": "small-images", "path": str(tiny_qwen), "capabilities": {"max_image_pixels": 4096}, "defaults": {"max_tokens": 4}},
        ],
        server={"default_model": "demo"},
    )
    with ServerThread(create_app(config, families)) as running:
        yield running


def launch(*flags: str) -> WebDriver:
    """A fresh headless Chromium (an empty profile, so nothing is kept from another test), with `flags` too."""
    if reason := _browser_missing():
        if os.environ.get("VLM_BROWSER_TESTS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = launch()
    yield driver
    driver.quit()


def console(driver: WebDriver, expected_statuses: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """The page's console errors and warnings, but for the failed loads of `expected_statuses` that the browser reports."""
    entries = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    statuses = "|".join(str(status) for status in expected_statuses) or "none"
    return [e for e in entries if not (e["source"] == "network" and re.search(rf"status of ({statuses})\b", e["message"]))]


def until(driver: WebDriver, condition: Callable[[WebDriver], Any], seconds: float = WAIT_S) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(condition)


def open_page(driver: WebDriver, server: ServerThread, model: str = "demo") -> None:
    driver.get(server.url + "/")
    until(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"#model option[value='{model}']"), 30)
    driver.find_element(By.CSS_SELECTOR, f"#model option[value='{model}']").click()


def send(driver: WebDriver, text: str) -> WebElement:
    """Type `text` and press Enter; the answer's element."""
    before = len(answers(driver))
    driver.find_element(By.ID, "prompt").send_keys(text, Keys.ENTER)
    until(driver, lambda d: len(answers(d)) > before, 10)
    return answers(driver)[-1]


def answers(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "#messages li.assistant")


def finished(answer: WebElement, driver: WebDriver) -> WebElement:
    """`answer` once its request has ended."""
    until(driver, lambda d: "streaming" not in (answer.get_attribute("class") or ""))
    return answer


def settings(driver: WebDriver, **values: str) -> None:
    """Open the settings and type `values` into their fields."""
    if not driver.find_element(By.ID, "settings").get_attribute("open"):
        driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    for name, value in values.items():
        field = driver.find_element(By.ID, name)
        field.clear()
        field.send_keys(value, Keys.TAB)  # TAB: the change event that saves it


def model_card(server: ServerThread, model: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}/v1/models/{model}").json()


def test_the_page_loads_without_console_errors(browser, served):
    open_page(browser, served)
    info = browser.find_element(By.ID, "model-info").text
    assert "qwen2_vl" in info and "video (native)" in info and "images scaled to" in info
    names = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#model option")]
    assert names == ["demo", "one-image", "small-images"]
    browser.find_element(By.CSS_SELECTOR, "#model option[value='one-image']").click()
    assert "up to 1 image" in browser.find_element(By.ID, "model-info").text
    assert browser.find_element(By.ID, "files").get_attribute("accept") == "image/*", "no video for this model"
    assert console(browser) == []


def test_a_text_chat_streams_and_keeps_its_history(browser, served):
    open_page(browser, served)
    first = finished(send(browser, "Hello there"), browser)
    assert int(first.get_attribute("data-chunks")) > 1, "the answer arrived in pieces"
    figures = first.find_element(By.CLASS_NAME, "figures").text
    assert re.search(r"first token \d+\.\d\d s · \d+\.\d tokens/s · \d+ prompt \+ 12 completion tokens", figures), figures
    first_prompt = int(re.search(r"(\d+) prompt", figures).group(1))
    second = finished(send(browser, "And then?"), browser)
    second_prompt = int(re.search(r"(\d+) prompt", second.find_element(By.CLASS_NAME, "figures").text).group(1))
    assert second_prompt > first_prompt + 12, "the second request carried the first turn"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages li.user")) == 2
    assert console(browser) == []


def test_an_attached_image_reaches_the_server(browser, served, tmp_path):
    image = tmp_path / "red.png"
    image.write_bytes(png_bytes(96, 64))
    before = metric_sum(served.url, "vlm_router_vision_encoding_seconds_count", model="demo")
    open_page(browser, served)
    browser.find_element(By.ID, "files").send_keys(str(image))
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#attachments img"), 5)
    answer = finished(send(browser, "What is in the picture?"), browser)
    assert "figures" in answer.find_element(By.CSS_SELECTOR, "p:last-child").get_attribute("class"), answer.text
    assert browser.find_elements(By.CSS_SELECTOR, "#messages li.user img.thumb"), "the message shows its image"
    assert browser.find_elements(By.CSS_SELECTOR, "#attachments li") == [], "sent attachments leave the composer"
    assert metric_sum(served.url, "vlm_router_vision_encoding_seconds_count", model="demo") == before + 1
    assert console(browser) == []


DROP_AND_PASTE = """
const done = arguments[arguments.length - 1];
const canvas = document.createElement("canvas");
canvas.width = 40;
canvas.height = 30;
canvas.getContext("2d").fillRect(0, 0, 40, 30);
canvas.toBlob((blob) => {
  const dropped = new DataTransfer();
  dropped.items.add(new File([blob], "dropped.png", { type: "image/png" }));
  document.querySelector("main").dispatchEvent(new DragEvent("drop", { dataTransfer: dropped, bubbles: true, cancelable: true }));
  const pasted = new DataTransfer();
  pasted.items.add(new File([blob], "pasted.png", { type: "image/png" }));
  document.getElementById("prompt").dispatchEvent(new ClipboardEvent("paste", { clipboardData: pasted, bubbles: true, cancelable: true }));
  done();
}, "image/png");
"""


def test_images_dropped_or_pasted_are_attached_and_can_be_removed(browser, served):
    open_page(browser, served)
    browser.execute_async_script(DROP_AND_PASTE)
    attached = browser.find_elements(By.CSS_SELECTOR, "#attachments img")
    assert [image.get_attribute("title") for image in attached] == ["dropped.png", "pasted.png"]
    browser.find_element(By.CSS_SELECTOR, "#attachments button[aria-label='Remove dropped.png']").click()
    assert [image.get_attribute("title") for image in browser.find_elements(By.CSS_SELECTOR, "#attachments img")] == ["pasted.png"]
    before = metric_sum(served.url, "vlm_router_vision_encoding_seconds_count", model="demo")
    assert finished(send(browser, "And this?"), browser).find_elements(By.CLASS_NAME, "figures")
    assert [image.get_attribute("title") for image in browser.find_elements(By.CSS_SELECTOR, "#messages li.user img")] == ["pasted.png"]
    assert metric_sum(served.url, "vlm_router_vision_encoding_seconds_count", model="demo") == before + 1
    assert console(browser) == []


def test_images_are_scaled_down_in_the_browser_to_the_models_budget(browser, served, tmp_path):
    image = tmp_path / "large.png"
    image.write_bytes(png_bytes(256, 192))
    open_page(browser, served, "small-images")
    browser.find_element(By.ID, "files").send_keys(str(image))
    finished(send(browser, "Describe it."), browser)
    sent = browser.find_element(By.CSS_SELECTOR, "#messages li.user img.thumb")
    assert sent.get_attribute("title") == "large.png, scaled from 256×192 to 73×55"
    width, height = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", sent)
    assert (width, height) == (73, 55) and width * height <= 4096
    assert sent.get_attribute("src").startswith("data:image/png;base64,")


def test_a_video_is_sent_as_a_video_url(browser, served, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(make_video(1.0))
    before = metric_sum(served.url, "vlm_router_vision_encoding_seconds_count", model="demo")
    open_page(browser, served)
    assert browser.find_element(By.ID, "files").get_attribute("accept") == "image/*,video/*"
    browser.find_element(By.ID, "files").send_keys(str(video))
    answer = finished(send(browser, "What happens?"), browser)
    assert answer.find_elements(By.CLASS_NAME, "figures"), answer.text
    assert browser.find_elements(By.CSS_SELECTOR, "#messages li.user video.thumb")
    assert metric_sum(served.url, "vlm_router_vision_encoding_seconds_count", model="demo") == before + 1
    assert console(browser) == []


def test_stop_cancels_the_request_on_the_server(browser, served):
    open_page(browser, served)
    settings(browser, max_tokens="4000")
    cancelled = metric_sum(served.url, "vlm_router_requests_total", model="demo", status="499", stream="true")
    answer = send(browser, "Tell me everything.")
    # Stop as soon as the server generates: the tiny model may write its 4000 tokens before the page has shown many.
    until(browser, lambda _: model_card(served, "demo")["running"] == 1, 60)
    stop = browser.find_element(By.ID, "stop")
    assert stop.is_displayed()
    stop.click()
    finished(answer, browser)
    assert answer.find_element(By.CLASS_NAME, "figures").text.endswith("stopped")
    assert not stop.is_displayed() and browser.find_element(By.ID, "send").is_enabled()
    until(browser, lambda _: model_card(served, "demo")["running"] == 0, 10)
    until(browser, lambda _: metric_sum(served.url, "vlm_router_requests_total", model="demo", status="499", stream="true") == cancelled + 1, 10)
    # One sequence at a time: the next request runs only if the stopped one no longer does.
    settings(browser, max_tokens="")
    assert "12 completion tokens" in finished(send(browser, "Short, please."), browser).text
    assert console(browser) == []


def test_an_error_shows_the_servers_message(browser, served, tmp_path):
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    parts = []
    for index, path in enumerate(images):
        path.write_bytes(png_bytes(32, 32, (index * 100, 50, 50)))
        parts.append({"type": "image_url", "image_url": {"url": data_url(path.read_bytes())}})
    body = {"model": "one-image", "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "Compare them."}]}]}
    expected = httpx.post(served.url + "/v1/chat/completions", json=body).json()["error"]
    open_page(browser, served, "one-image")
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in images))
    answer = finished(send(browser, "Compare them."), browser)
    assert "error" in answer.get_attribute("class") and answer.get_attribute("role") == "alert"
    assert answer.find_element(By.CLASS_NAME, "text").text == f"Error 400 ({expected['code']}): {expected['message']}"
    assert "failed" in browser.find_element(By.CSS_SELECTOR, "#messages li.user").get_attribute("class")
    # The failed turn is not sent again: the next message is answered.
    assert finished(send(browser, "Hello"), browser).find_elements(By.CLASS_NAME, "figures")
    assert console(browser, expected_statuses=(400,)) == []


def test_api_keys_are_asked_for_and_kept_in_the_browser(browser, tiny_qwen, families):
    config = router_config([{"name": "demo", "path": str(tiny_qwen), "defaults": {"max_tokens": 4}}], server={"api_keys": [KEY]})
    with ServerThread(create_app(config, families)) as keyed:
        browser.get(keyed.url + "/")
        notice = browser.find_element(By.ID, "notice")
        until(browser, lambda _: notice.is_displayed(), 10)
        assert notice.text.startswith("Error 401 (invalid_api_key): You didn't provide an API key.") and "Settings" in notice.text
        settings(browser, api_key=KEY)
        until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option[value='demo']"), 10)
        assert not notice.is_displayed()
        assert finished(send(browser, "Hi"), browser).find_elements(By.CLASS_NAME, "figures")
        browser.refresh()
        until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option[value='demo']"), 10)
        assert browser.find_element(By.ID, "api_key").get_attribute("value") == KEY
        assert console(browser, expected_statuses=(401,)) == []


def test_clear_chat_ends_the_conversation_even_mid_answer(browser, served):
    open_page(browser, served)
    settings(browser, max_tokens="4000")
    answer = send(browser, "Tell me everything.")
    until(browser, lambda d: int(answer.get_attribute("data-chunks") or 0) > 0)
    browser.find_element(By.ID, "clear").click()
    until(browser, lambda d: d.find_element(By.ID, "send").is_enabled(), 10)
    assert browser.find_elements(By.CSS_SELECTOR, "#messages li") == []
    settings(browser, max_tokens="")
    figures = finished(send(browser, "Hello"), browser).find_element(By.CLASS_NAME, "figures").text
    alone = {"model": "demo", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 1}
    prompt_tokens = httpx.post(served.url + "/v1/chat/completions", json=alone, timeout=60).json()["usage"]["prompt_tokens"]
    assert f"{prompt_tokens} prompt" in figures, "the cleared turn was not sent again"


@pytest.mark.parametrize("trusted", [False, True])
def test_served_under_a_host_name(tiny_qwen, families, trusted):
    """A name that could be rebound to the server needs server.allowed_host_names; without it, the page loads but
    its requests are refused, and it shows why."""
    server = {"host": "0.0.0.0", "allowed_host_names": ["vlm.test"] if trusted else []}
    config = router_config([{"name": "demo", "path": str(tiny_qwen), "defaults": {"max_tokens": 4}}], server=server)
    with ServerThread(create_app(config, families)) as named:
        driver = launch("--host-resolver-rules=MAP vlm.test 127.0.0.1")
        try:
            driver.get(f"http://vlm.test:{named.port}/")
            until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model option[value='demo']"), 10)
            answer = finished(send(driver, "Hi"), driver)
            if trusted:
                assert answer.find_elements(By.CLASS_NAME, "figures")
                assert console(driver) == []
            else:
                text = answer.find_element(By.CLASS_NAME, "text").text
                assert text.startswith("Error 403 (cors_origin_not_allowed)") and "server.allowed_host_names" in text
                assert console(driver, expected_statuses=(403,)) == []
        finally:
            driver.quit()


def test_keyboard_and_labels(browser, served):
    open_page(browser, served)
    prompt = browser.find_element(By.ID, "prompt")
    prompt.send_keys("line one", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "line two")
    assert prompt.get_attribute("value") == "line one\nline two" and answers(browser) == [], "Shift+Enter adds a line"
    prompt.send_keys(Keys.ENTER)
    until(browser, answers, 10)
    answer = finished(answers(browser)[-1], browser)
    assert browser.find_element(By.CSS_SELECTOR, "#messages li.user .text").text == "line one\nline two"
    assert answer.find_elements(By.CLASS_NAME, "figures")
    settings(browser)
    controls = browser.find_elements(By.CSS_SELECTOR, "input, select, textarea, button:not([hidden])")
    assert len(controls) == 12  # the model, seven settings, clear, files, the message and send
    unnamed = [c.get_attribute("id") or c.get_attribute("outerHTML") for c in controls if not c.accessible_name.strip()]
    assert unnamed == []


def test_small_screens(browser, served):
    browser.set_window_size(375, 760)
    open_page(browser, served)
    finished(send(browser, "Hello"), browser)
    width = browser.execute_script("return window.innerWidth")
    assert width <= 375
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width, "nothing scrolls sideways"
    for control in ("model", "prompt", "send"):
        box = browser.find_element(By.ID, control).rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, control


def test_screenshots(browser, served, tmp_path):
    """The pictures of docs/playground.md and the README, written there when VLM_UPDATE_SCREENSHOTS=1."""
    image = tmp_path / "sunset.png"
    picture = Image.new("RGB", (640, 400), (40, 90, 160))
    picture.paste((250, 190, 60), (250, 140, 390, 280))
    picture.save(image)
    out = ROOT / "docs" / "img" if os.environ.get("VLM_UPDATE_SCREENSHOTS") == "1" else tmp_path
    open_page(browser, served)
    browser.find_element(By.ID, "files").send_keys(str(image))
    finished(send(browser, "What is in this picture?"), browser)
    finished(send(browser, "Say it in one word."), browser)
    browser.save_screenshot(str(out / "playground.png"))
    browser.set_window_size(375, 760)
    try:
        until(browser, lambda d: d.execute_script("return window.innerWidth") <= 375, 5)
    except TimeoutException:
        pytest.fail("the window did not narrow")
    browser.save_screenshot(str(out / "playground-narrow.png"))
    for name, width in (("playground.png", 1100), ("playground-narrow.png", 375)):
        with Image.open(out / name) as shot:
            assert shot.width == width, name

