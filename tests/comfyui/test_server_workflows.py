"""Acceptance test against a real ComfyUI server on CPU (COMFYUI_PATH): the pack loads, every workflow in
workflows/ runs through /prompt as the frontend would send it, progress and previews arrive over the
websocket, the saved PNGs carry prompt, workflow and our stats, and an interrupt stops a run cleanly."""
import io
import json
import tempfile
import time

import pytest
from PIL import Image

from comfy_harness import PACK_NAME, Server, load_workflow, ui_to_api, workflow_names

VIRTUAL = {"Note", "MarkdownNote"}  # frontend-only nodes, never sent to the server


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("websocket")
    from adt_core.demo import demo_available
    env = {}
    if not demo_available():  # the bundled weights are not built yet: the same layout in smoke size
        from adt_core.demo.train import DemoRecipe, train_demo
        folder = tempfile.mkdtemp(prefix="adt_demo_smoke_")
        train_demo(folder, DemoRecipe.smoke(), show_progress=False, log=lambda *a: None)
        env["ADT_TREE_DEMO_DIR"] = folder
    s = Server(env)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def api_prompt(workflow, object_info):
    ui = dict(workflow, nodes=[n for n in workflow["nodes"] if n["type"] not in VIRTUAL])
    return ui_to_api(ui, object_info)


def samplers(prompt):
    return [k for k, v in prompt.items() if v["class_type"] == "ADTTreeSampler"]


def upstream_sampler(prompt, node_id):
    src = prompt[node_id]["inputs"]["images"][0]
    return src if prompt[src]["class_type"] == "ADTTreeSampler" else None


def test_pack_loads_and_registers(server, object_info):
    ours = {k: v for k, v in object_info.items() if k.startswith("ADTTree")}
    assert sorted(ours) == sorted(["ADTTreeLoadModel", "ADTTreeLoadDraftHead", "ADTTreeTreeSettings",
                                   "ADTTreeSettings", "ADTTreeLanternSettings", "ADTTreeSampler",
                                   "ADTTreeHeatmap", "ADTTreeCompare"])
    for info in ours.values():
        assert info["python_module"] == f"custom_nodes.{PACK_NAME}"
        assert info["category"].startswith("sampling/autoregressive")
    log = server.log_text()
    assert f"custom_nodes/{PACK_NAME}" in log and "IMPORT FAILED" not in log and "Cannot import" not in log


def test_workflows_are_listed_as_templates(server):
    names = [n[:-5] for n in workflow_names()]
    assert len(names) >= 3
    assert sorted(server.get("/api/workflow_templates")[PACK_NAME]) == names
    served = server.get(f"/api/workflow_templates/{PACK_NAME}/{workflow_names()[0]}")
    assert served == load_workflow(workflow_names()[0])


@pytest.mark.parametrize("name", workflow_names())
def test_workflow_runs_with_progress_previews_and_png_metadata(server, object_info, name):
    workflow = load_workflow(name)
    prompt = api_prompt(workflow, object_info)
    prompt_id, messages = server.run(prompt, extra_pnginfo={"workflow": workflow})
    errors = [d for t, d in messages if t == "execution_error"]
    assert not errors, errors[0]["exception_message"] if errors else ""
    kinds = [t for t, _ in messages]
    assert "execution_start" in kinds and "execution_success" in kinds
    assert kinds.count("binary") >= len(samplers(prompt))  # partial-image previews

    history = server.history(prompt_id)
    assert history["status"]["status_str"] == "success"
    outputs = history["outputs"]
    for sid in samplers(prompt):
        progress = [d for t, d in messages if t == "progress" and d["node"] == sid]
        assert progress and progress[-1]["value"] == progress[-1]["max"] > 0
        assert [p["value"] for p in progress] == sorted(p["value"] for p in progress)
        assert "image(s)" in outputs[sid]["text"][0]  # stats shown on the node

    saved = [(k, img) for k, v in prompt.items() if v["class_type"] == "SaveImage" for img in outputs[k]["images"]]
    assert saved
    for node_id, img in saved:
        png = Image.open(io.BytesIO(server.view(img)))
        assert png.format == "PNG" and png.size[0] == png.size[1]
        assert json.loads(png.info["prompt"]).keys() == prompt.keys()
        assert json.loads(png.info["workflow"]) == workflow
        stats = json.loads(png.info["adt_tree_stats"])
        sid = upstream_sampler(prompt, node_id)
        assert stats[sid]["method"] == prompt[sid]["inputs"]["method"]
        assert stats[sid]["image_size"] == png.size[0] and len(stats[sid]["per_image"]) >= 1

    for k, v in prompt.items():
        if v["class_type"] == "ADTTreeCompare":
            table = outputs[k]["text"][0]
            assert "speedup" in table and "vanilla" in table
        if v["class_type"] == "PreviewImage" and prompt[v["inputs"]["images"][0]]["class_type"] == "ADTTreeHeatmap":
            heat = Image.open(io.BytesIO(server.view(outputs[k]["images"][0])))
            assert heat.size[1] > heat.size[0]  # the heatmap plus its legend strip


def test_bad_class_label_is_reported_as_node_error(server, object_info):
    prompt = api_prompt(load_workflow("adt_tree_generation.json"), object_info)
    sid = samplers(prompt)[0]
    prompt[sid]["inputs"]["class_labels"] = "meadow, unicorn"
    _, messages = server.run(prompt)
    errors = [d for t, d in messages if t == "execution_error"]
    assert errors and errors[0]["node_id"] == sid and "unknown class 'unicorn'" in errors[0]["exception_message"]


def test_interrupt_stops_the_sampler_cleanly(server, object_info):
    prompt = api_prompt(load_workflow("adt_tree_generation.json"), object_info)
    sid = samplers(prompt)[0]
    prompt[sid]["inputs"].update(seed=987654, batch_size=16)  # a long run that no cache can answer
    sent = {}

    def interrupt_on_progress(srv, prompt_id, m):
        if m["type"] == "progress" and m["data"]["node"] == sid and not sent:
            sent["at"] = time.time()
            srv.post("/interrupt", {"prompt_id": prompt_id})

    prompt_id, messages = server.run(prompt, on_message=interrupt_on_progress)
    assert time.time() - sent["at"] < 30  # stops within a round, not after the batch
    stopped = [d for t, d in messages if t == "execution_interrupted"]
    assert sent and stopped and stopped[0]["node_id"] == sid
    last = [d for t, d in messages if t == "progress" and d["node"] == sid][-1]
    assert last["value"] < last["max"]
    status = server.history(prompt_id)["status"]
    assert status["status_str"] == "error" and status["completed"] is False
    assert not server.history(prompt_id)["outputs"]  # nothing saved

    prompt[sid]["inputs"].update(seed=987655, batch_size=1)  # the server is still usable
    prompt_id, messages = server.run(prompt)
    assert "execution_success" in [t for t, _ in messages]
