#!/usr/bin/env python3
"""Check the notebooks' widgets in a real JupyterLab, in headless Chromium, as a student would use them.

Run:  make browser-test                       (installs chromium, chromium-driver and selenium when missing)
      make browser-test NOTEBOOKS="notebooks/01_pretext_task.ipynb"
      .venv/bin/python tools/browser_test.py [NOTEBOOK.ipynb ...]
Default: every notebooks/*.ipynb whose code mentions ``rotlib.widgets`` or the upload widget (``OrientationWidget``).
Offline: it uses Debian's /usr/bin/chromium and /usr/bin/chromedriver ($CHROMIUM, $CHROMEDRIVER) and never
downloads a driver.
Notebooks 02, 04 and 08 load their models from the cache ($ROTLIB_CACHE or cache/); run them after
`make test` or `make notebooks`, or they train first.

What it does: copies the notebooks (outputs cleared) into a temporary folder, so autosave never touches
the tracked ones; starts JupyterLab there on 127.0.0.1 (free port, random token, own process group,
always stopped with its kernels at the end); then for each notebook:
  - opens it, waits for the toolbar to name the kernel and the kernel to be idle, clicks Run > Run All Cells,
    waits until no cell is running; fails on a traceback in any output or a cell left unexecuted;
  - for each widget that draws an image (an ipywidgets Output with an <img>): presses the right arrow
    key on each slider and picks the next entry of each dropdown, and fails unless the drawn image
    changes each time; gives each upload button a grey picture, and fails unless the drawn image changes and
    the answer's bar is blue (an upload's true turn is unknown), never green or red; fails on
    "Error displaying widget", "model not found" or a widget that never renders;
  - saves screenshots of each widget before and after each interaction under screenshots/browser-test/
    (git-ignored; also the server's jupyterlab.log), and reports SEVERE browser-console messages.
The last line is "N passed, M failed"; the exit status is 1 when anything failed.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from matplotlib.colors import to_hex
from PIL import Image

from rotlib.plots import ANSWER_COLOURS

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select
except ImportError:
    sys.exit("selenium is missing: .venv/bin/pip install -e '.[browser]' (or run `make browser-test`)")

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "screenshots" / "browser-test"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000"]
# A cell's widget output: the output node holds the widget view (or its "Loading"/"Error displaying" text).
WIDGETS_JS = """return [...(arguments[0] || document).querySelectorAll('.jp-OutputArea-output')].filter(e =>
    !e.parentElement.closest('.jupyter-widgets') && (e.matches('.jupyter-widgets') ||
    e.querySelector(':scope > .jupyter-widgets') || /Loading widget|Error displaying widget/.test(e.textContent)));"""
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
BROKEN = ("Error displaying widget", "model not found")
# An upload button's file input is created off the page (ipywidgets 8): a click puts it on the page instead of
# opening a file chooser, so that WebDriver can give it a file.
UPLOAD_JS = """document.querySelectorAll('input[data-browser-test]').forEach(e => e.remove());
const click = HTMLInputElement.prototype.click;
HTMLInputElement.prototype.click = function () {
    if (this.type !== 'file' || this.isConnected) return click.call(this);
    this.setAttribute('data-browser-test', '');
    document.body.append(this);
};
try { arguments[0].click(); } finally { delete HTMLInputElement.prototype.click; }
return document.querySelector('input[data-browser-test]');"""
RIGHT, WRONG, UNKNOWN = (to_hex(ANSWER_COLOURS[v]) for v in ("right", "wrong", None))
# An IPython traceback, or the last line of a SyntaxError (which prints no "Traceback").
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b.*$", re.M)


class Failure(Exception):
    pass


def wait_for(condition, timeout: float, what: str, every: float = 0.25):
    """Poll ``condition()`` until it returns something truthy; raise Failure after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def mentions_widgets(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any(c.cell_type == "code" and ("rotlib.widgets" in c.source or "OrientationWidget" in c.source)
               for c in nb.cells)


def grey_picture(path: Path) -> Path:
    """A picture to upload: grey levels only (a bright top), so none of its pixels can pass for a bar's colour."""
    Image.linear_gradient("L").resize((96, 64)).transpose(Image.Transpose.FLIP_TOP_BOTTOM).convert("RGB").save(path)
    return path


def colours_in(src: str) -> set[str]:
    """The colours of the pixels of an <img>'s data:image/png URL, as hex strings."""
    png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    return {"#%02x%02x%02x" % rgb for _, rgb in png.getcolors(1 << 24)}


def copy_clean(src: Path, dst: Path):
    """Copy a notebook without outputs or stored widget state, on the default python3 kernel."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, dst)


class Lab:
    """JupyterLab on 127.0.0.1 with a random token and a free port, in its own process group."""

    def __init__(self, root: Path, scratch: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = scratch / "settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True)  # render every cell, so the DOM holds the whole notebook
        (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        (scratch / "config" / "labconfig").mkdir(parents=True)  # no "Jupyter news?" notification
        (scratch / "config" / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel draws inline
        env.update(JUPYTER_CONFIG_DIR=str(scratch / "config"), JUPYTERLAB_SETTINGS_DIR=str(scratch / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(scratch / "workspaces"), JUPYTER_RUNTIME_DIR=str(scratch / "runtime"))
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--port-retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(scratch / "jupyterlab.log", "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or self.api("status") is not None, 120, "JupyterLab to start")
        if self.proc.poll() is not None:
            raise Failure(f"JupyterLab exited with {self.proc.returncode}; see {self.log.name}")

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read() or b"{}")
        except OSError:
            return None

    def kernels_idle(self) -> bool:
        kernels = self.api("kernels")
        return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)

    def close_sessions(self):
        for session in self.api("sessions") or []:
            self.api(f"sessions/{session['id']}", "DELETE")

    def stop(self):
        """Shut the kernels and the server down; kill whatever of them is left, by process group."""
        children = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.api("shutdown", "POST")
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        for pid in children:  # kernels run in their own sessions
            try:
                os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def descendants(pid: int) -> list[int]:
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    found, todo = [], [pid]
    while todo:
        ppid = todo.pop()
        kids = [p for p, pp in parent.items() if pp == ppid]
        found += kids
        todo += kids
    return found


def start_browser(profile: Path):
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.unhandled_prompt_behavior = "accept"  # "leave the page?" when moving on from an unsaved notebook
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


class NotebookCheck:
    def __init__(self, driver, lab: Lab, name: str, shots: Path, results: list, timeout: float, upload: Path):
        self.driver, self.lab, self.name, self.shots, self.results, self.timeout = driver, lab, name, shots, results, timeout
        self.upload = upload

    def record(self, what: str, error: str | None = None):
        self.results.append(error is None)
        print(f"{'PASS' if error is None else 'FAIL'} {self.name}: {what}" + (f": {error}" if error else ""), flush=True)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def run_all(self) -> float:
        start = time.monotonic()
        self.driver.get(f"{self.lab.url}/lab/tree/{self.name}?reset&token={self.lab.token}")
        # The status can read "idle" before a kernel exists: also wait for the toolbar to name the kernel.
        wait_for(lambda: self.js("const k = document.querySelector('.jp-NotebookPanel .jp-KernelName');"
                                 "return k && /python/i.test(k.textContent);"), 120, "the toolbar to name the kernel")
        wait_for(self.lab.kernels_idle, 120, "the kernel to be idle")
        time.sleep(1)
        wait_for(lambda: [m for m in self.driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
                          if m.text.strip() == "Run"], 10, "the Run menu")[0].click()
        wait_for(lambda: self.driver.find_elements(By.CSS_SELECTOR, '.lm-Menu-item[data-command="runmenu:run-all"]'),
                 10, "Run All Cells in the Run menu")[0].click()
        wait_for(lambda: self.js("return document.querySelectorAll('.jp-InputPrompt').length > 0 && "
                                 "[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                                 ".some(p => /\\[[*0-9]/.test(p.textContent));"), 30, "Run All to start")
        wait_for(lambda: self.js("return ![...document.querySelectorAll('.jp-InputPrompt')]"
                                 ".some(p => p.textContent.includes('*'));") and self.lab.kernels_idle(),
                 self.timeout, "the cells to finish", every=1)
        time.sleep(1)
        self.check_errors(None, "Run All")
        not_run = self.js("return [...document.querySelectorAll('.jp-CodeCell')].filter(c =>"
                          " c.querySelector('.jp-InputArea-editor').textContent.trim() &&"
                          " !/\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent)).length;")
        if not_run:
            raise Failure(f"{not_run} code cell(s) did not run")
        return time.monotonic() - start

    def errors(self, root=None) -> str | None:
        """A traceback or a broken-widget message among the outputs (of the whole page, or under ``root``)."""
        texts = self.js(f"return [...(arguments[0] || document).querySelectorAll('{STDERR}')].map(e => e.innerText);",
                        root)
        for text in texts:
            if TRACEBACK.search(text):
                return f"traceback:\n{text[-1500:]}"
        page = self.js("return [...(arguments[0] || document).querySelectorAll('.jp-OutputArea-output')]"
                       ".map(e => e.innerText).join('\\n');", root)
        return next((f'"{bad}" shown' for bad in BROKEN if bad in page), None)

    def check_errors(self, root, when: str):
        error = self.errors(root)
        if error:
            raise Failure(f"after {when}: {error}")

    def widgets(self):
        """The top-level widget outputs, once every one has rendered."""
        outputs = self.js(WIDGETS_JS)
        for i, out in enumerate(outputs, 1):
            wait_for(lambda: out.find_elements(By.CSS_SELECTOR, ":scope > .jupyter-widgets")
                     or any(b in out.text for b in BROKEN), 30, f"widget {i} to render")
        self.check_errors(None, "rendering the widgets")
        return outputs

    def image(self, out) -> str:
        return self.js("const i = arguments[0].querySelector('.widget-output img'); return i ? i.src : '';", out)

    def file_input(self, control):
        """The upload button's file input: put on the page by a click (ipywidgets 8), or already in the control."""
        found = self.js(UPLOAD_JS, control) or control.find_elements(By.CSS_SELECTOR, "input[type=file]")
        if not found:
            raise Failure("the upload button has no file input (neither made by its click nor in the control)")
        return found[0] if isinstance(found, list) else found

    def interact(self, i: int, out, controls):
        """Move each control once (an upload: give it a picture); the widget's image must change each time."""
        for step, (kind, control) in enumerate(controls, 1):
            if kind == "dropdown" and len(Select(control.find_element(By.TAG_NAME, "select")).options) < 2:
                continue
            label = self.js("const l = arguments[0].querySelector('.widget-label'); return l ? l.textContent : '';",
                            control) or f"{kind} {step}"
            what = f"widget {i}: {kind} '{label}' redraws the image" + (
                ", the answer's bar blue (truth unknown), never green or red" if kind == "upload" else "")
            base = self.shots / f"widget{i}-{step:02d}-{re.sub(r'[^A-Za-z0-9]+', '_', label).strip('_')}"
            try:
                before = self.image(out)
                out.screenshot(f"{base}-before.png")
                if kind == "slider":  # the keyboard moves the handle by one step
                    control.find_element(By.CSS_SELECTOR, ".noUi-handle").send_keys(Keys.ARROW_RIGHT)
                elif kind == "upload":
                    self.file_input(control).send_keys(str(self.upload))
                else:
                    select = Select(control.find_element(By.TAG_NAME, "select"))
                    current = next(k for k, o in enumerate(select.options) if o.is_selected())
                    select.select_by_index((current + 1) % len(select.options))
                wait_for(lambda: self.image(out) not in ("", before) or self.errors(out), 20, "the image to change")
                wait_for(self.lab.kernels_idle, 60, "the kernel to be idle")
                time.sleep(0.5)
                out.screenshot(f"{base}-after.png")
                self.check_errors(out, f"moving {label!r}")
                seen = colours_in(self.image(out)) if kind == "upload" else set()
                if kind == "upload" and (UNKNOWN not in seen or seen & {RIGHT, WRONG}):
                    raise Failure(f"the answer's bar is not blue alone: blue {UNKNOWN in seen}, green {RIGHT in seen}, "
                                  f"red {WRONG in seen}")
                self.record(what)
            except (Failure, WebDriverException) as e:
                try:
                    out.screenshot(f"{base}-after.png")
                finally:
                    self.record(what, str(e).strip())

    def run(self, expect_widgets: bool):
        try:
            seconds = self.run_all()
            outputs = self.widgets()
        except (Failure, WebDriverException) as e:
            self.driver.save_screenshot(str(self.shots / "failure.png"))
            self.record("Run All Cells, widgets render", str(e).strip())
            return
        drawing = [o for o in outputs if self.image(o)]
        self.record(f"Run All Cells ({seconds:.0f} s), {len(outputs)} widget(s), {len(drawing)} drawing an image")
        if expect_widgets and not drawing:
            self.record("a widget draws an image", "none rendered an image")
        for i, out in enumerate(drawing, 1):
            self.js("arguments[0].scrollIntoView({block: 'center'});", out)
            controls = [("slider", c) for c in out.find_elements(By.CSS_SELECTOR, ".widget-slider")]
            controls += [("dropdown", c) for c in out.find_elements(By.CSS_SELECTOR, ".widget-dropdown")]
            controls += [("upload", c) for c in out.find_elements(By.CSS_SELECTOR, ".widget-upload")]
            self.interact(i, out, controls)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="default: notebooks/*.ipynb that use rotlib.widgets or the upload widget")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds for one notebook's Run All (default 1800)")
    args = ap.parse_args(argv)
    notebooks = args.notebooks or [p for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if mentions_widgets(p)]
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} not found: apt-get install chromium chromium-driver (or run `make browser-test`)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop JupyterLab when killed
    results, lab, driver = [], None, None
    scratch = Path(tempfile.mkdtemp(prefix="browser-test-"))
    try:
        work = scratch / "notebooks"
        work.mkdir()
        for nb in notebooks:
            copy_clean(nb, work / nb.name)
        upload = grey_picture(scratch / "grey.png")
        lab = Lab(work, scratch)
        driver = start_browser(scratch / "chromium")
        print(f"JupyterLab on {lab.url}, {len(notebooks)} notebook(s); screenshots in {SHOTS}", flush=True)
        for nb in notebooks:
            shots = SHOTS / nb.stem
            shutil.rmtree(shots, ignore_errors=True)
            shots.mkdir(parents=True)
            NotebookCheck(driver, lab, nb.name, shots, results, args.timeout, upload).run(mentions_widgets(nb))
            for entry in driver.get_log("browser"):
                if entry.get("level") == "SEVERE":
                    print(f"     {nb.name}: browser console SEVERE: {entry.get('message', '')[:300]}")
            lab.close_sessions()  # the next notebook gets the kernel's CPU
    except (Failure, WebDriverException) as e:
        results.append(False)
        print(f"FAIL starting JupyterLab or Chromium: {e}")
    finally:
        if driver is not None:
            driver.quit()
        if lab is not None:
            lab.stop()
            SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(lab.log.name, SHOTS / "jupyterlab.log")
        shutil.rmtree(scratch, ignore_errors=True)
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
