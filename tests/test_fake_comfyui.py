"""Replay-style checks that FakeComfyUI says what the recorded ComfyUI 0.3.64 said.

The transcripts live in tests/data/comfyui-0.3.64/transcripts (see PROTOCOL.md there).
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
from typing import Any, Callable, Iterator

import httpx
import pytest
import websocket
from PIL import Image

from tests.fake_comfyui import FakeComfyUI
from tests.paths import TRANSCRIPTS

VOLATILE = {"prompt_id", "timestamp", "sid"}



# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def transcript(name: str) -> dict[str, Any]:
    return json.loads((TRANSCRIPTS / f"{name}.json").read_text())


def recorded_ws(name: str) -> list[Any]:
    out = []
    for event in transcript(name)["events"]:
        if event["kind"] == "ws_text":
            out.append(normalize(event["message"]))
        elif event["kind"] == "ws_binary":
            out.append(("binary", event["event_type"]))
    return out


def strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def normalize(msg: Any) -> Any:
    if isinstance(msg, bytes):
        return ("binary", struct.unpack(">I", msg[:4])[0])
    return (msg["type"], strip(msg["data"]))


def png_bytes(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


class Ws:
    """A websocket-client connection that parses messages."""

    def __init__(self, fake: FakeComfyUI, client_id: str | None = None, feature_flags: bool = False) -> None:
        query = f"?clientId={client_id}" if client_id else ""
        self.conn = websocket.create_connection(fake.url.replace("http://", "ws://") + "/ws" + query, timeout=10)
        if feature_flags:
            self.conn.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))

    def recv(self) -> Any:
        opcode, data = self.conn.recv_data()
        return json.loads(data) if opcode == websocket.ABNF.OPCODE_TEXT else data

    def until(self, predicate: Callable[[Any], bool]) -> list[Any]:
        messages = []
        while True:
            messages.append(self.recv())
            if predicate(messages[-1]):
                return messages

    def until_done(self) -> list[Any]:
        return self.until(is_done)

    def close(self) -> None:
        self.conn.close()


def is_done(msg: Any) -> bool:
    return isinstance(msg, dict) and msg["type"] == "executing" and msg["data"]["node"] is None


def of_type(messages: list[Any], type_: str) -> list[dict[str, Any]]:
    return [m for m in messages if isinstance(m, dict) and m["type"] == type_]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def client(fake: FakeComfyUI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=10) as c:
        yield c


def slow_chain(color: int, prefix: str = "probe/slow") -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color}},
        "10": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 3, "sigma": 1.0}},
        "11": {"class_type": "ImageBlur", "inputs": {"image": ["10", 0], "blur_radius": 3, "sigma": 1.0}},
        "99": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": prefix}},
    }


# ------------------------------------------------------------------------------------------------
# b1, b3/b4/b5, e, g1/g2: message sequences equal to the recording
# ------------------------------------------------------------------------------------------------


def test_b1_ws_sequence_and_history_match(fake: FakeComfyUI, client: httpx.Client) -> None:
    t = transcript("b1_load_invert_save")
    ws = Ws(fake, t["client_id"])
    up = client.post("/upload/image", files={"image": ("probe.png", png_bytes((64, 48), (9, 99, 199)), "image/png")},
                     data={"overwrite": "true", "subfolder": "probe", "type": "input"})
    assert up.json() == {"name": "probe.png", "subfolder": "probe", "type": "input"}
    r = client.post("/prompt", json={"prompt": t["workflow"], "client_id": t["client_id"]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
    assert set(r.json()) == {"prompt_id", "number", "node_errors"} and r.json()["node_errors"] == {}
    got = [normalize(m) for m in [ws.recv()] + ws.until_done()]
    assert got == recorded_ws("b1_load_invert_save")
    pid = r.json()["prompt_id"]
    hist = client.get(f"/history/{pid}").json()[pid]
    rec = next(e for e in t["events"] if e["kind"] == "http" and e["path"].startswith("/history/"))
    rec_entry = next(iter(rec["response_json"].values()))
    assert hist["prompt"][1] == pid
    hist["prompt"][1] = rec_entry["prompt"][1]
    assert strip(hist) == strip(rec_entry)
    assert client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert list(client.get("/history", params={"max_items": 1}).json()) == [pid]


def test_invert_pixels(fake: FakeComfyUI, client: httpx.Client) -> None:
    img = Image.new("RGB", (4, 2))
    img.putdata([(0, 0, 0), (255, 255, 255), (10, 20, 30), (200, 100, 50)] * 2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    client.post("/upload/image", files={"image": ("px.png", buf.getvalue(), "image/png")})
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "px.png"}},
          "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
          "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "px/inv"}}}
    ws = Ws(fake, "px")
    client.post("/prompt", json={"prompt": wf, "client_id": "px"})
    executed = of_type(ws.until_done(), "executed")[0]["data"]["output"]["images"][0]
    assert executed == {"filename": "inv_00001_.png", "subfolder": "px", "type": "output"}
    out = Image.open(io.BytesIO(client.get("/view", params=executed).content)).convert("RGB")
    assert out.tobytes() == bytes(255 - b for b in img.tobytes())


def test_b3_b4_preview_getsize_wssave(fake: FakeComfyUI, client: httpx.Client) -> None:
    wf = transcript("b3_preview_getsize_wssave")["workflow"]
    ws = Ws(fake, "b3")
    client.post("/prompt", json={"prompt": wf, "client_id": "b3"})
    msgs = [ws.recv()] + ws.until_done()
    assert _same_but_temp_names(msgs, "b3_preview_getsize_wssave")
    frame = next(m for m in msgs if isinstance(m, bytes))
    assert frame[:8] == bytes.fromhex("0000000100000002")
    assert Image.open(io.BytesIO(frame[8:])).getpixel((0, 0)) == (0, 255, 255)
    ws4 = Ws(fake, "b4", feature_flags=True)
    client.post("/prompt", json={"prompt": wf, "client_id": "b4"})
    msgs4 = [ws4.recv(), ws4.recv()] + ws4.until_done()
    assert _same_but_temp_names(msgs4, "b4_wssave_with_feature_flags")
    frame4 = next(m for m in msgs4 if isinstance(m, bytes))
    (mlen,) = struct.unpack(">I", frame4[4:8])
    meta = json.loads(frame4[8:8 + mlen])
    assert meta == {"node_id": "5", "prompt_id": meta["prompt_id"], "display_node_id": "5", "parent_node_id": None,
                    "real_node_id": "5", "image_type": "image/png"}
    assert mlen == len(json.dumps(meta)) and frame4[8 + mlen:8 + mlen + 4] == b"\x89PNG"


def _same_but_temp_names(msgs: list[Any], name: str) -> bool:
    """Equal to the recording once the random PreviewImage suffix (ComfyUI_temp_xxxxx) is masked."""
    def mask(x: Any) -> Any:
        return json.loads(re.sub(r"ComfyUI_temp_[a-z]{5}_", "ComfyUI_temp_XXXXX_", json.dumps(x)))
    got = [mask(normalize(m)) for m in msgs]
    want = [mask(x) for x in recorded_ws(name)]
    assert got == want
    return True


def test_b5_getimagesize_text_frame(fake: FakeComfyUI, client: httpx.Client) -> None:
    wf = transcript("b5_getimagesize_progress_text")["workflow"]
    ws = Ws(fake, "b5")
    client.post("/prompt", json={"prompt": wf, "client_id": "b5"})
    msgs = [ws.recv()] + ws.until_done()
    assert _same_but_temp_names(msgs, "b5_getimagesize_progress_text")
    blob = (TRANSCRIPTS / "blobs" / "b5_getimagesize_progress_text_bin0.bin").read_bytes()
    assert next(m for m in msgs if isinstance(m, bytes)) == blob


def test_e_caching_sequence(fake: FakeComfyUI, client: httpx.Client) -> None:
    t = transcript("e_caching")
    ws = Ws(fake, "cache")
    got = [normalize(ws.recv())]
    for event in t["events"]:
        if event["kind"] == "http" and event["method"] == "POST":
            client.post("/prompt", json={**event["request_json"], "client_id": "cache"})
            got += [normalize(m) for m in ws.until_done()]
    assert got == recorded_ws("e_caching")


def test_g1_g2_txt2img_previews(fake: FakeComfyUI, client: httpx.Client) -> None:
    for name, flags in (("g1_txt2img_tiny_sd15_legacy_previews", False),
                        ("g2_txt2img_tiny_sd15_metadata_previews", True)):
        ws = Ws(fake, name, feature_flags=flags)
        client.post("/prompt", json={"prompt": transcript(name)["workflow"], "client_id": name})
        msgs = [ws.recv()] + ([ws.recv()] if flags else []) + ws.until_done()
        assert [normalize(m) for m in msgs] == recorded_ws(name)
        frame = next(m for m in msgs if isinstance(m, bytes))
        if flags:
            (mlen,) = struct.unpack(">I", frame[4:8])
            assert json.loads(frame[8:8 + mlen])["image_type"] == "image/jpeg"
            jpeg = frame[8 + mlen:]
        else:
            assert frame[:8] == bytes.fromhex("0000000100000001")
            jpeg = frame[8:]
        assert Image.open(io.BytesIO(jpeg)).size == (512, 512)
        ws.close()


def test_txt2img_image_depends_on_seed_and_text(fake: FakeComfyUI, client: httpx.Client) -> None:
    wf = transcript("g1_txt2img_tiny_sd15_legacy_previews")["workflow"]
    ws = Ws(fake, "seed")
    pixels = []
    for seed, text in ((1, "a cat"), (2, "a cat"), (1, "a dog"), (1, "a cat")):
        wf["3"]["inputs"]["seed"] = seed
        wf["6"]["inputs"]["text"] = text
        client.post("/prompt", json={"prompt": wf, "client_id": "seed"})
        image = of_type(ws.until_done(), "executed")[0]["data"]["output"]["images"][0]
        out = Image.open(io.BytesIO(client.get("/view", params=image).content))
        assert out.size == (64, 64)
        pixels.append(out.getpixel((5, 5)))
    assert len(set(pixels[:3])) == 3 and pixels[0] == pixels[3]


# ------------------------------------------------------------------------------------------------
# c: validation and runtime errors
# ------------------------------------------------------------------------------------------------


def validation_cases() -> list[tuple[str, dict[str, Any]]]:
    cases, note = [], None
    for event in transcript("c_validation_errors")["events"]:
        if event["kind"] == "note" and event["text"].startswith("case "):
            note = event["text"].split()[1]
        elif event["kind"] == "http" and event["path"] == "/prompt" and note:
            cases.append((note, event))
            note = None
    return cases


@pytest.mark.parametrize("name,event", validation_cases(), ids=[c[0] for c in validation_cases()])
def test_c_validation_errors(client: httpx.Client, name: str, event: dict[str, Any]) -> None:
    if "request_json" in event:
        r = client.post("/prompt", json=event["request_json"])
    else:
        r = client.post("/prompt", content=event["request_raw"].encode())
    assert r.status_code == event["status"]
    assert r.headers["content-type"] == event["response_headers"]["content-type"]
    if "response_text" in event:
        assert r.text == event["response_text"]
        return
    body, want = r.json(), event["response_json"]
    if r.status_code == 200:
        assert body["node_errors"] == want["node_errors"] and isinstance(body["prompt_id"], str)
    else:
        assert body == want
        if "traceback" not in r.text:  # the recorder shortened the paths inside tracebacks
            assert r.headers["content-length"] == event["response_headers"]["content-length"]


def test_c_runtime_error(fake: FakeComfyUI, client: httpx.Client) -> None:
    t = transcript("c_runtime_error")
    recorded = next(e["message"]["data"] for e in t["events"]
                    if e["kind"] == "ws_text" and e["message"]["type"] == "execution_error")
    ws = Ws(fake, "rt")
    pid = client.post("/prompt", json={"prompt": t["workflow"], "client_id": "rt"}).json()["prompt_id"]
    msgs = ws.until_done()
    types = [m["type"] for m in msgs]
    assert types[-5:] == ["progress_state", "executing", "execution_error", "status", "executing"]
    error = of_type(msgs, "execution_error")[0]["data"]
    assert set(error) == set(recorded)
    for key in ("node_id", "node_type", "executed", "exception_message", "exception_type", "traceback",
                "current_inputs"):
        assert error[key] == recorded[key], key
    assert sorted(error["current_outputs"]) == sorted(recorded["current_outputs"])
    hist = client.get(f"/history/{pid}").json()[pid]
    assert hist["status"]["status_str"] == "error" and hist["status"]["completed"] is False
    assert hist["outputs"] == {} and hist["status"]["messages"][-1][0] == "execution_error"


# ------------------------------------------------------------------------------------------------
# a: uploads, /view, object_info
# ------------------------------------------------------------------------------------------------


def test_a_upload_rename_dedup_and_errors(fake: FakeComfyUI, client: httpx.Client) -> None:
    first, other = png_bytes((64, 48), (1, 2, 3)), png_bytes((64, 48), (4, 5, 6))
    uploads = [e for e in transcript("a_upload")["events"] if e["kind"] == "http" and e["method"] == "POST"]
    for index, event in enumerate(uploads):
        (field, meta), = event["request_files"].items()
        data = other if index == 3 else first
        r = client.post("/upload/image", files={field: (meta["filename"], data, "image/png")},
                        data=event["request_form"])
        assert r.status_code == event["status"]
        if event["status"] == 200:
            assert r.json() == event["response_json"]
        else:
            assert r.content == b"" and r.headers["content-length"] == "0" and "content-type" not in r.headers
    assert len(fake.uploads) == len(uploads)
    assert fake.uploads[3]["name"] == "probe (1).png" and fake.uploads[3]["bytes_len"] == len(other)
    view = client.get("/view", params={"filename": "probe.png", "subfolder": "probe", "type": "input"})
    assert view.status_code == 200 and view.content == first
    assert view.headers["content-type"] == "image/png"
    assert view.headers["content-disposition"] == 'filename="probe.png"'
    missing = client.get("/view", params={"filename": "does_not_exist.png", "type": "input"})
    assert missing.status_code == 404 and missing.content == b""
    info = client.get("/object_info/LoadImage").json()
    rec = next(e for e in transcript("a_upload")["events"] if e.get("path") == "/object_info/LoadImage")
    assert info == rec["response_json"]


def test_view_rejects_traversal(client: httpx.Client) -> None:
    assert client.get("/view", params={"filename": "../x.png"}).status_code == 400
    assert client.get("/view", params={"filename": "/etc/passwd"}).status_code == 400
    assert client.get("/view", params={"filename": "x.png", "subfolder": "../.."}).status_code == 403


def test_object_info_endpoints() -> None:
    with FakeComfyUI(checkpoints=["b.safetensors", "a.safetensors"]) as fake, httpx.Client(base_url=fake.url) as c:
        full = c.get("/object_info").json()
        assert len(full) == 476
        assert full["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == ["a.safetensors",
                                                                                      "b.safetensors"]
        assert c.get("/object_info/NoSuchNode").json() == {}
        assert c.get("/features").json() == {"supports_preview_metadata": True, "max_upload_size": 104857600}
        assert c.get("/system_stats").json()["system"]["comfyui_version"] == "0.3.64"
        wf = transcript("g1_txt2img_tiny_sd15_legacy_previews")["workflow"]
        body = c.post("/prompt", json={"prompt": wf}).json()
        assert body["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"


# ------------------------------------------------------------------------------------------------
# d/g3: interrupt and queue
# ------------------------------------------------------------------------------------------------


def test_d_interrupt_between_nodes(client: httpx.Client, fake: FakeComfyUI) -> None:
    fake.node_delay = 0.15
    ws = Ws(fake, "intr")
    ws.recv()
    pid = client.post("/prompt", json={"prompt": slow_chain(1), "client_id": "intr"}).json()["prompt_id"]
    ws.until(lambda m: isinstance(m, dict) and m["type"] == "executing" and m["data"].get("node") == "10")
    assert client.post("/interrupt", json={"prompt_id": "not-running"}).content == b""
    assert client.post("/interrupt", json={"prompt_id": pid}).status_code == 200
    msgs = ws.until_done()
    tail = [normalize(m) for m in msgs[-5:]]
    assert tail == [
        ("progress_state", tail[0][1]), ("executing", {"node": "11", "display_node": "11"}),
        ("execution_interrupted", {"node_id": "11", "node_type": "ImageBlur", "executed": ["1", "10"]}),
        ("status", {"status": {"exec_info": {"queue_remaining": 0}}}), ("executing", {"node": None})]
    hist = client.get(f"/history/{pid}").json()[pid]["status"]
    assert hist["status_str"] == "error" and hist["messages"][-1][0] == "execution_interrupted"
    fake.node_delay = 0.0
    client.post("/prompt", json={"prompt": slow_chain(2), "client_id": "intr"})
    assert of_type(ws.until_done(), "execution_success")


def test_d_queue_delete_clear_and_front(client: httpx.Client, fake: FakeComfyUI) -> None:
    fake.node_delay = 0.1
    ws = Ws(fake, "q")
    ids = [client.post("/prompt", json={"prompt": slow_chain(c), "client_id": "q"}).json()["prompt_id"]
           for c in range(4)]
    wait_for(lambda: len(client.get("/queue").json()["queue_running"]) == 1)
    r = client.post("/queue", json={"delete": [ids[2], ids[0]]})
    assert r.status_code == 200 and r.content == b""
    queue = client.get("/queue").json()
    assert [i[1] for i in queue["queue_running"]] == [ids[0]]
    assert sorted(i[1] for i in queue["queue_pending"]) == sorted([ids[1], ids[3]])
    item = queue["queue_running"][0]
    assert item[0] == 0 and item[3] == {"client_id": "q"} and item[4] == ["99"]
    front = client.post("/prompt", json={"prompt": slow_chain(9), "client_id": "q", "front": True}).json()
    assert front["number"] == -4
    client.post("/queue", json={"clear": True})
    assert client.get("/queue").json()["queue_pending"] == []
    fake.node_delay = 0.0
    ws.until_done()
    assert client.get(f"/history/{ids[1]}").json() == {}


def test_g3_interrupt_mid_sampling(fake: FakeComfyUI, client: httpx.Client) -> None:
    fake.step_delay = 0.02
    wf = transcript("g3_txt2img_interrupt_mid_sampling")["workflow"]
    ws = Ws(fake, "g3")
    pid = client.post("/prompt", json={"prompt": wf, "client_id": "g3"}).json()["prompt_id"]
    ws.until(lambda m: isinstance(m, dict) and m["type"] == "progress" and m["data"]["value"] == 3)
    client.post("/interrupt", json={"prompt_id": pid})
    msgs = ws.until_done()
    interrupted = of_type(msgs, "execution_interrupted")[0]["data"]
    assert interrupted["node_id"] == "3" and interrupted["node_type"] == "KSampler"
    assert [m["type"] for m in msgs if isinstance(m, dict)][-3:] == ["execution_interrupted", "status", "executing"]
    assert all(m["data"]["value"] <= 4 for m in of_type(msgs, "progress"))


# ------------------------------------------------------------------------------------------------
# h: routing, reconnect; knobs
# ------------------------------------------------------------------------------------------------


def test_h1_h2_routing(fake: FakeComfyUI, client: httpx.Client) -> None:
    wf = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 5}},
          "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
          "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    submitter, observer = Ws(fake, "sub"), Ws(fake, "obs")
    submitter.recv(), observer.recv()
    client.post("/prompt", json={"prompt": wf, "client_id": "sub"})
    submitter.until_done()
    seen = observer.until(lambda m: m["type"] == "status" and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)
    assert {m["type"] for m in seen} == {"status"} and len(seen) == 3
    wf["1"]["inputs"]["color"] = 6
    pid = client.post("/prompt", json={"prompt": wf}).json()["prompt_id"]
    seen = observer.until(lambda m: m["type"] == "status" and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)
    assert [m["type"] for m in seen] == ["status", "status"] + ["progress_state"] * 6 + ["status"]
    wait_for(lambda: client.get(f"/history/{pid}").json() != {})


def test_h3_reconnect_mid_run(fake: FakeComfyUI, client: httpx.Client) -> None:
    fake.node_delay = 0.15
    ws = Ws(fake, "re")
    client.post("/prompt", json={"prompt": slow_chain(3), "client_id": "re"})
    ws.until(lambda m: isinstance(m, dict) and m["type"] == "executing" and m["data"].get("node") == "10")
    ws.close()
    again = Ws(fake, "re")
    first, second = again.recv(), again.recv()
    assert first["type"] == "status" and first["data"]["sid"] == "re"
    assert second == {"type": "executing", "data": {"node": "10"}}
    assert of_type(again.until_done(), "execution_success")
    assert fake.ws_connections == 2


def test_no_client_id_generates_sid(fake: FakeComfyUI) -> None:
    ws = Ws(fake)
    status = ws.recv()
    assert status["type"] == "status" and len(status["data"]["sid"]) == 32


def test_a_restart_forgets_the_queue_and_history_but_keeps_the_files(fake: FakeComfyUI, client: httpx.Client) -> None:
    fake.node_delay = 0.2
    done = client.post("/prompt", json={"prompt": slow_chain(1, "probe/kept")}).json()["prompt_id"]
    wait_for(lambda: client.get(f"/history/{done}").json() != {})
    running, waiting = (client.post("/prompt", json={"prompt": slow_chain(c)}).json() for c in (2, 3))
    wait_for(lambda: fake.queue_remaining == 2)
    url, ws = fake.url, Ws(fake, "before")
    assert ws.recv()["type"] == "status"
    fake.restart()
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionResetError)):
        ws.recv()  # cut without a close frame, as a killed process
    assert fake.url == url
    assert client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert client.get("/history").json() == {} and client.get(f"/history/{done}").json() == {}
    assert client.get("/view", params={"filename": "kept_00001_.png", "subfolder": "probe"}).status_code == 200
    again = client.post("/prompt", json={"prompt": slow_chain(4)}).json()
    assert again["number"] == 0 and running["number"] == 1 and waiting["number"] == 2  # counting starts over
    fake.refuse_ws = True
    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        Ws(fake, "after")
    assert client.get("/system_stats").status_code == 200  # HTTP still works
