"""A real ComfyUI server for tests: started as `main.py` on loopback, driven over HTTP and websocket."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import websocket  # websocket-client

from . import paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gpu_available() -> bool:
    import torch
    return torch.cuda.is_available()


#: Latent previews on, as a user who wants to watch the scales grow runs ComfyUI: `auto` picks TAESD
#: where its decoder files are in models/vae_approx, else latent2rgb (no download either way).
PREVIEW_METHOD = "auto"


class ComfyServer:
    """``main.py`` in a subprocess with the stand-in models and this pack (via extra_model_paths.yaml).

    Latent previews are on (`PREVIEW_METHOD`) unless ``extra_args`` names a ``--preview-method``.
    """

    def __init__(self, workdir: Path, extra_args: list[str] | None = None, extra_paths: Path | None = None,
                 env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        self.log_path = self.workdir / "comfyui.log"
        self.output_dir = self.workdir / "output"
        self.input_dir = self.workdir / "input"
        for d in (self.output_dir, self.input_dir, self.workdir / "temp", self.workdir / "user"):
            d.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(self.port),
               "--extra-model-paths-config", str(extra_paths or paths.EXTRA_PATHS),
               "--output-directory", str(self.output_dir), "--input-directory", str(self.input_dir),
               "--temp-directory", str(self.workdir / "temp"), "--user-directory", str(self.workdir / "user"),
               "--database-url", "sqlite:///:memory:", "--disable-auto-launch", *(extra_args or [])]
        if "--preview-method" not in cmd:
            cmd += ["--preview-method", PREVIEW_METHOD]
        if not gpu_available():
            cmd.append("--cpu")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=paths.COMFYUI, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
        self._wait_ready()

    # --- lifecycle -------------------------------------------------------------------------
    def _wait_ready(self, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not start in {timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    # --- HTTP ---------------------------------------------------------------------------------
    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            body = r.read()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body

    def post(self, path: str, payload: dict | None = None):
        data = json.dumps(payload or {}).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def object_info(self, node: str | None = None) -> dict:
        return self.get("/object_info" + (f"/{node}" if node else ""))

    def queue(self, prompt: dict) -> tuple[int, dict]:
        """POST /prompt; ``(status, response)`` (``node_errors`` on a 400)."""
        return self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})

    def interrupt(self):
        return self.post("/interrupt")

    def history(self, prompt_id: str) -> dict:
        return self.get(f"/history/{prompt_id}").get(prompt_id, {})

    def view(self, image: dict) -> bytes:
        q = "&".join(f"{k}={urllib.request.quote(str(image[k]))}" for k in ("filename", "subfolder", "type"))
        return self.get(f"/view?{q}")

    # --- websocket ----------------------------------------------------------------------------
    def connect(self) -> websocket.WebSocket:
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}", timeout=600)
        return ws

    def run(self, prompt: dict, timeout: float = 600, on_message=None) -> dict:
        """Queue ``prompt``, follow it over the websocket until it ends, return its record.

        The record has ``prompt_id``, ``messages`` (every JSON message of this prompt, in order),
        ``history`` (GET /history) and ``status`` ("success", "error" or "interrupted").
        """
        ws = self.connect()
        try:
            status, resp = self.queue(prompt)
            if status != 200:
                raise PromptRejected(resp)
            prompt_id = resp["prompt_id"]
            messages = []
            deadline = time.time() + timeout
            outcome = None
            while time.time() < deadline:
                raw = ws.recv()
                if not isinstance(raw, str):
                    messages.append({"type": "binary_preview", "data": {"bytes": len(raw)}})
                    if on_message is not None:
                        on_message(messages[-1])
                    continue
                msg = json.loads(raw)
                data = msg.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                messages.append(msg)
                if on_message is not None:
                    on_message(msg)
                t = msg["type"]
                if t == "execution_error":
                    outcome = "error"
                elif t == "execution_interrupted":
                    outcome = "interrupted"
                elif t == "execution_success":
                    outcome = outcome or "success"
                if t == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                    break
                if outcome in ("error", "interrupted"):
                    break
            else:
                raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s")
        finally:
            ws.close()
        for _ in range(50):  # history is written right after the last message
            hist = self.history(prompt_id)
            if hist:
                break
            time.sleep(0.1)
        return {"prompt_id": prompt_id, "messages": messages, "history": hist, "status": outcome or "success"}


class PromptRejected(AssertionError):
    def __init__(self, response):
        super().__init__(json.dumps(response, indent=1)[:4000])
        self.response = response
