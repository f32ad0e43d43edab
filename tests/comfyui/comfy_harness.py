"""Test harness for a real ComfyUI checkout (COMFYUI_PATH): CPU import hooks, a throwaway server on
127.0.0.1, a small HTTP/websocket client, and the UI -> API workflow conversion the frontend does."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PACK_NAME = "adt_tree"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def comfyui_path():
    return os.environ.get("COMFYUI_PATH")


def cpu_shim():
    """The shared launcher that lets ComfyUI import CUDA-only torchvision/torchaudio wheels under a CPU
    torch (a no-op where they match). COMFYUI_CPU_SHIM overrides; None when absent."""
    path = os.environ.get("COMFYUI_CPU_SHIM") or os.path.join(REPO, "..", "shared", "tools", "run_comfyui_cpu.py")
    return os.path.abspath(path) if os.path.isfile(path) else None


def install_cpu_import_hooks() -> None:
    """In-process variant of the shim: run its import-hook part only (everything before it starts main.py)."""
    shim = cpu_shim()
    if shim is None:
        return
    with open(shim) as f:
        source = f.read()
    head, found, _ = source.partition("\ncomfy_dir = ")
    if not found:
        raise RuntimeError(f"{shim}: unexpected layout, cannot take its import hooks")
    exec(compile(head, shim, "exec"), {"__name__": "comfyui_cpu_shim"})


def pack_parent(tmp: str) -> str:
    """A folder holding only a link to this repository, named like a clone in custom_nodes/."""
    parent = os.path.join(tmp, "custom_nodes")
    os.makedirs(parent, exist_ok=True)
    os.symlink(REPO, os.path.join(parent, PACK_NAME))
    return parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """ComfyUI on CPU in a subprocess with its own temp dirs; stopped (and cleaned up) by stop()."""

    def __init__(self, env: dict = None):
        self.tmp = tempfile.mkdtemp(prefix="adt_comfy_")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        dirs = {k: os.path.join(self.tmp, k) for k in ("output", "temp", "input", "user")}
        for d in dirs.values():
            os.makedirs(d)
        self.output_dir = dirs["output"]
        extra = os.path.join(self.tmp, "extra_model_paths.yaml")
        with open(extra, "w") as f:
            f.write(f"adt_tree_test:\n    base_path: {self.tmp}\n    custom_nodes: {pack_parent(self.tmp)}\n")
        launcher = [cpu_shim(), comfyui_path()] if cpu_shim() else [os.path.join(comfyui_path(), "main.py")]
        cmd = [sys.executable, *launcher, "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--disable-api-nodes", "--extra-model-paths-config", extra,
               "--output-directory", dirs["output"], "--temp-directory", dirs["temp"],
               "--input-directory", dirs["input"], "--user-directory", dirs["user"],
               "--database-url", "sqlite:///:memory:"]
        self.log_path = os.path.join(self.tmp, "server.log")
        self.log = open(self.log_path, "w")
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=comfyui_path(), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=full_env)

    def wait_ready(self, timeout: float = 180) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not start in {timeout} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, n: int = 4000) -> str:
        return self.log_text()[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- HTTP -----------------------------------------------------------------------------------
    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            data = r.read()
        return json.loads(data) if r.headers.get_content_type() == "application/json" else data

    def post(self, path: str, body: dict):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
        return json.loads(data) if data else None

    def view(self, image: dict) -> bytes:
        q = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder", "type")})
        return self.get(f"/view?{q}")

    # --- running prompts ------------------------------------------------------------------------
    def run(self, prompt: dict, extra_pnginfo: dict = None, on_message=None, timeout: float = 300):
        """Submit over /prompt and follow the websocket to the end marker. -> (prompt_id, messages);
        messages are (type, data) with binary frames as ("binary", event number)."""
        import websocket
        client_id = str(uuid.uuid4())
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=timeout)
        try:
            body = {"prompt": prompt, "client_id": client_id}
            if extra_pnginfo is not None:
                body["extra_data"] = {"extra_pnginfo": extra_pnginfo}
            prompt_id = self.post("/prompt", body)["prompt_id"]
            messages = []
            while True:
                frame = ws.recv()
                if isinstance(frame, bytes):
                    messages.append(("binary", int.from_bytes(frame[:4], "big")))
                    continue
                m = json.loads(frame)
                messages.append((m["type"], m["data"]))
                if on_message is not None:
                    on_message(self, prompt_id, m)
                if m["type"] == "executing" and m["data"].get("node") is None \
                        and m["data"].get("prompt_id") == prompt_id:
                    return prompt_id, messages
        finally:
            ws.close()

    def history(self, prompt_id: str) -> dict:
        return self.get(f"/history/{prompt_id}")[prompt_id]


# --- workflows --------------------------------------------------------------------------------------
def load_workflow(name: str) -> dict:
    with open(os.path.join(REPO, "workflows", name)) as f:
        return json.load(f)


def workflow_names():
    return sorted(f for f in os.listdir(os.path.join(REPO, "workflows")) if f.endswith(".json"))


def _is_widget(spec) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """What the frontend does on 'Queue': links become [node, slot], widgets_values are matched to the
    node's widget inputs in /object_info order, skipping the control_after_generate value after a seed."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        info = object_info[node["type"]]
        linked = {}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                _, src, slot, _, _, _ = links[inp["link"]]
                linked[inp["name"]] = [str(src), slot]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        values = list(node.get("widgets_values", []))
        inputs = {}
        for name in order:
            spec = specs[name]
            if not _is_widget(spec):
                continue
            value = values.pop(0)
            if name not in linked:
                inputs[name] = value
            if len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("control_after_generate"):
                values.pop(0)
        inputs.update(linked)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt
