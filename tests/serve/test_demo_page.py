"""The demo page in a real browser: headless Chromium loads `/` from a real west-serve (tiny
random model), a real recording is put on the file input, and the transcript the page shows
must be the text the HTTP API returns for the same file (json and verbose_json, whose
segments are listed too); a server error shows the server's message; a recording from
the (fake) microphone is sent as 16 kHz mono WAV whose transcript the page shows; and live
mode streams the (fake) microphone over the realtime WebSocket, showing each utterance's
partial text in grey, then its final text in black.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
messages ending in NUL on file descriptors 3 and 4), so the test needs nothing beyond the
system `chromium` package: no driver, no websocket client, no browser download.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from server_process import start_server

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


class Chromium:
    """Headless Chromium and one DevTools session on one page."""

    def __init__(self, profile: Path, *extra_flags: str):
        exe = find_chromium()
        commands_r, self._commands = os.pipe()  # we write commands, Chromium reads fd 3
        self._replies, replies_w = os.pipe()  # Chromium writes replies on fd 4

        def give_pipes_to_child():
            # Through high numbers first, in case the pipes themselves are 3 or 4.
            os.dup2(commands_r, 100)
            os.dup2(replies_w, 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        flags = [
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-sandbox",  # tests may run as root (CI containers), where the sandbox refuses
            "--disable-gpu",
            "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            *extra_flags,
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            [exe, *flags],
            preexec_fn=give_pipes_to_child,
            pass_fds=(3, 4),  # kept open in the child after the dup2 above
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def call(self, method: str, timeout: float = 30, **params) -> dict:
        """Send a command (to the page's session once attached) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") == self._next_id:  # anything else is an event: not needed here
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply["result"]

    def _read(self, deadline: float, method: str) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method}")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited (code {self.proc.poll()}) during {method}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression on the page (awaited if it is a promise)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        """Poll until `expression` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page: {what} did not happen within {timeout} s")

    def set_file(self, selector: str, path: Path) -> None:
        """Choose `path` in a file input, as a user would (the page gets its change event)."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(path)])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._commands)
        os.close(self._replies)


def start_browser(tmp_path: Path, *flags: str) -> Chromium:
    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; tools/install.sh does)")
    return Chromium(tmp_path / "profile", *flags)


@pytest.fixture
def browser(tmp_path):
    chromium = start_browser(tmp_path)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def wav(speech_dir) -> Path:
    return speech_dir / "utt0.wav"  # espeak-ng: "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    yield from start_server(random_model_dir, tmp_path_factory.mktemp("serve") / "server.log")


def api(server, path: Path, response_format: str = "json") -> requests.Response:
    """What the HTTP API answers for `path`, to compare the page with."""
    with open(path, "rb") as f:
        return requests.post(
            f"{server.url}/v1/audio/transcriptions",
            files={"file": (path.name, f)},
            data={"model": "west", "response_format": response_format},
            timeout=60,
        )


# What the page shows once a request is answered: its error, or its transcript.
OUTCOME = """(() => {
  const error = document.getElementById("error"), result = document.getElementById("result");
  if (!error.hidden) return {error: error.textContent};
  if (!result.hidden) return {text: document.getElementById("transcript").textContent,
                              segments: document.querySelectorAll("#segments tbody tr").length,
                              elapsed: document.getElementById("elapsed").textContent};
  return null;
})()"""


def load_page(browser: Chromium, server) -> None:
    browser.open(server.url + "/")
    # The new tab shows about:blank until the page arrives: `?.` waits for the element too.
    browser.wait_for("document.getElementById('model')?.options.length > 0", 30, "model list")


def submit(browser: Chromium, server, path: Path, response_format: str = "json") -> dict:
    """Load the page, choose `path`, pick the format, press Transcribe: what the page shows."""
    load_page(browser, server)
    browser.set_file("#file", path)
    browser.evaluate(f"document.getElementById('response_format').value = {response_format!r}")
    browser.wait_for("!document.getElementById('submit').disabled", 10, "Transcribe enabled")
    browser.evaluate("document.getElementById('submit').click()")
    return browser.wait_for(OUTCOME, 60, "a transcript or an error")


@pytest.mark.parametrize("response_format", ["json", "verbose_json"])
def test_page_shows_the_transcript_the_api_returns(browser, server, wav, response_format):
    expected = api(server, wav, response_format).json()
    assert expected["text"]  # the random model says something, so equality means something
    shown = submit(browser, server, wav, response_format)
    assert "error" not in shown, shown
    assert shown["text"] == expected["text"]
    assert shown["elapsed"].startswith("Took ")
    assert shown["segments"] == len(expected.get("segments", []))
    assert shown["segments"] > 0 or response_format == "json"


def test_page_shows_the_server_error_message(browser, server, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio\n")
    reply = api(server, notes)
    assert reply.status_code == 400
    shown = submit(browser, server, notes)
    assert shown == {"error": f"{reply.json()['error']['message']} (HTTP 400)"}


def test_page_fits_a_phone_and_labels_every_control(browser, server):
    load_page(browser, server)
    phone = dict(width=360, height=740, deviceScaleFactor=2, mobile=True)
    browser.call("Emulation.setDeviceMetricsOverride", **phone)
    # A mobile browser widens its layout viewport to content that overflows: compare the
    # page's width with the screen's, not with innerWidth.
    assert browser.evaluate("document.documentElement.scrollWidth") <= phone["width"]
    unlabelled = browser.evaluate(
        "[...document.querySelectorAll('input, select')].filter(e => !e.labels.length)"
        ".map(e => e.id)"
    )
    assert unlabelled == []
    assert browser.evaluate("document.getElementById('error').getAttribute('role')") == "alert"


# The audio the page would send, as base64 (the page keeps it in its `audio` variable).
AUDIO_BASE64 = """(async () => {
  const bytes = new Uint8Array(await audio.blob.arrayBuffer());
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(s);
})()"""


def test_recording_is_sent_as_16khz_wav(server, wav, tmp_path):
    """The microphone path: Chromium's fake capture device plays a real recording; the page
    records it (webm), converts it to 16 kHz mono 16-bit WAV, and shows the transcript the
    API gives for that WAV."""
    browser = start_browser(
        tmp_path,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",  # grants the microphone without a prompt
        f"--use-file-for-fake-audio-capture={wav}",
    )
    try:
        load_page(browser, server)
        browser.evaluate("document.getElementById('record').click()")
        recording = "document.getElementById('record').getAttribute('aria-pressed') === 'true'"
        browser.wait_for(recording, 10, "recording")
        time.sleep(2.5)
        browser.evaluate("document.getElementById('record').click()")
        browser.wait_for("audio !== null && audio.converted", 30, "the WAV of the recording")
        sent = tmp_path / "sent.wav"
        sent.write_bytes(base64.b64decode(browser.evaluate(AUDIO_BASE64)))
        info = sf.info(str(sent))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.5 < info.duration < 5, info.duration
        samples, _ = sf.read(str(sent))
        assert np.abs(samples).max() > 0.05  # the speech, not silence
        expected = api(server, sent).json()["text"]
        browser.evaluate("document.getElementById('submit').click()")
        shown = browser.wait_for(OUTCOME, 60, "a transcript or an error")
        assert shown.get("text") == expected, shown
    finally:
        browser.close()


@pytest.fixture(scope="module")
def ctc_server(model_args, tmp_path_factory):
    """A server for live mode: a seeded random model with a CTC branch (which gives the
    partial texts)."""
    import torch
    from safetensors.torch import save_file

    from west.models.build import build_model

    model_dir = tmp_path_factory.mktemp("ctc_model")
    args = dataclasses.replace(model_args, ctc_conf={"weight": 1.0})
    torch.manual_seed(0)
    save_file(build_model(args).trainable_state_dict(), str(model_dir / "model.safetensors"))
    args.save(model_dir)
    yield from start_server(model_dir, tmp_path_factory.mktemp("serve_ctc") / "server.log")


# The first line that shows a partial text, with its colour.
PARTIAL_LINE = """(() => {
  const line = [...document.querySelectorAll("#live-lines li.partial")]
    .find((li) => li.textContent && li.textContent !== "…");
  return line && {item: line.dataset.item, text: line.textContent,
                  color: getComputedStyle(line).color};
})()"""


def final_line(item: str) -> str:
    return f"""(() => {{
  const line = document.querySelector('#live-lines li[data-item="{item}"].final');
  return line && {{text: line.textContent, color: getComputedStyle(line).color}};
}})()"""


def test_live_mode_shows_partials_turning_into_finals(ctc_server, speech_dir, tmp_path):
    """Chromium's fake microphone plays two sentences with pauses (looped); the page
    streams it as 24 kHz PCM16 over v1/realtime and shows a grey partial line that turns
    into a black final one, one line per utterance."""
    pieces = []
    for name in ("utt0.wav", "utt1.wav"):
        x, sr = sf.read(speech_dir / name, dtype="float32")
        pieces += [x, np.zeros(int(1.5 * sr), np.float32)]
    mic = tmp_path / "mic.wav"
    sf.write(mic, np.concatenate(pieces), sr, subtype="PCM_16")
    streams = ctc_server.metric("west_realtime_streams_total")
    browser = start_browser(
        tmp_path,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
    )
    try:
        load_page(browser, ctc_server)
        browser.evaluate("document.getElementById('live-toggle').click()")
        browser.wait_for(
            "document.getElementById('live-status').textContent.startsWith('Listening')",
            30,
            "the microphone streaming",
        )
        partial = browser.wait_for(PARTIAL_LINE, 30, "a grey line with partial text")
        final = browser.wait_for(final_line(partial["item"]), 30, "that line's final text")
        assert final["text"] and final["color"] != partial["color"]
        browser.evaluate("document.getElementById('live-toggle').click()")
        browser.wait_for(
            "document.getElementById('live-status').textContent === 'Stopped.'", 30, "stopping"
        )
        lines = browser.evaluate(
            "[...document.querySelectorAll('#live-lines li')].map((li) => li.className)"
        )
        assert lines and set(lines) == {"final"}  # every utterance heard was finalised
        counts = browser.evaluate("({...document.getElementById('live-lines').dataset})")
        assert int(counts["partials"]) > 0 and int(counts["finals"]) == len(lines)
        assert browser.evaluate("document.getElementById('error').hidden")
    finally:
        browser.close()
    assert ctc_server.metric("west_realtime_streams_total") == streams + 1
    assert ctc_server.metric("west_realtime_streams") == 0


def test_page_asks_for_the_key_of_a_server_that_needs_one(
    browser, random_model_dir, wav, tmp_path_factory
):
    """With --api_key, / answers 401 with the page itself; the page asks for the key, and
    with it lists the models and transcribes (its requests carry the key)."""
    log = tmp_path_factory.mktemp("serve-key") / "server.log"
    gen = start_server(random_model_dir, log, "--api_key", "page-key")
    server = next(gen)
    try:
        headers = {"Authorization": "Bearer page-key"}
        with open(wav, "rb") as f:
            expected = requests.post(
                f"{server.url}/v1/audio/transcriptions",
                files={"file": (wav.name, f)},
                headers=headers,
                timeout=60,
            ).json()["text"]
        browser.open(server.url + "/")
        browser.wait_for("document.getElementById('key-form')?.hidden === false", 30, "key form")
        assert "API key" in browser.evaluate("document.getElementById('error').textContent")
        assert browser.evaluate("document.getElementById('model').options.length") == 0
        browser.evaluate("document.getElementById('api-key').value = 'page-key'")
        browser.evaluate("document.getElementById('key-save').click()")
        browser.wait_for("document.getElementById('model').options.length > 0", 30, "models")
        browser.set_file("#file", wav)
        browser.wait_for("!document.getElementById('submit').disabled", 10, "Transcribe enabled")
        browser.evaluate("document.getElementById('submit').click()")
        shown = browser.wait_for(OUTCOME, 60, "a transcript or an error")
        assert shown.get("text") == expected, shown
    finally:
        next(gen, None)
