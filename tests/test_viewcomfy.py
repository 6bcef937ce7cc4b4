"""ViewComfy deployments against the guide's protocol (tests/viewcomfy_double.py says where it comes from)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import httpx
import pytest
from PIL import Image

from comfyui_gradio.comfy.backend import Log
from comfyui_gradio.comfy.events import Progress, Started
from comfyui_gradio.comfy.viewcomfy import ViewComfyBackend, flat_params
from comfyui_gradio.errors import ProtocolError, ServerError, ServerUnavailable
from comfyui_gradio.forms.loader import load_tab
from comfyui_gradio.forms.schema import TabSpec
from tests.paths import WORKFLOWS
from tests.replay import png_bytes
from tests.viewcomfy_double import ViewComfyDouble

URL = "https://viewcomfy.test/api/deployment-1"


@pytest.fixture()
def double() -> ViewComfyDouble:
    return ViewComfyDouble()


@pytest.fixture()
def invert() -> TabSpec:
    return load_tab(WORKFLOWS / "invert.json")


def backend_for(double: ViewComfyDouble, tmp_path: Path, secret: str = "vc-secret") -> ViewComfyBackend:
    return ViewComfyBackend(URL, client_id="vc-id", client_secret=secret, output_dir=tmp_path,
                            http=httpx.Client(transport=double.transport()))


def test_a_run_sends_flat_params_and_file_parts_and_saves_the_outputs(double, invert, tmp_path: Path) -> None:
    backend = backend_for(double, tmp_path)
    job = backend.submit(invert, {"image": png_bytes((10, 200, 30))})
    events = [e for e in job.events()]
    result = job.result(timeout=5)
    (sent,) = double.requests
    assert sent["logs"] == "true" and sent["headers"]["client_id"] == "vc-id"
    assert sent["params"] == {"3-inputs-filename_prefix": "comfyui-gradio/invert"}  # links and the file are not params
    assert list(sent["files"]) == ["1-inputs-image"]
    assert Image.open(result.images[0].path).convert("RGB").getpixel((0, 0)) == (245, 55, 225)
    assert result.images[0].path.parent == tmp_path / job.prompt_id
    assert (result.server, result.images[0].output_name) == (URL, "inverted")
    assert events[0] == Started()
    assert Log("got prompt") in events
    assert [e for e in events if isinstance(e, Progress)] == [Progress("", "Running", 1, 2), Progress("", "Running", 2, 2)]


def test_literal_inputs_are_params_and_links_are_not() -> None:
    prompt = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
              "3": {"class_type": "KSampler", "inputs": {"seed": 5, "cfg": 7.5, "model": ["4", 0]}}}
    assert flat_params(prompt) == {"6-inputs-text": "a cat", "3-inputs-seed": 5, "3-inputs-cfg": 7.5}
    assert flat_params(prompt, skip={"6-inputs-text"}) == {"3-inputs-seed": 5, "3-inputs-cfg": 7.5}


def test_refused_credentials_say_what_to_set(double, invert, tmp_path: Path) -> None:
    with pytest.raises(ServerError) as caught:
        backend_for(double, tmp_path, secret="wrong-secret").submit(invert, {"image": png_bytes()})
    assert str(caught.value) == (
        f"The ViewComfy deployment {URL} refused the credentials (HTTP 401); set VIEWCOMFY_CLIENT_ID and "
        "VIEWCOMFY_CLIENT_SECRET (or their _<n> variants for the n-th entry of COMFYUI_URL) to the deployment's "
        "API keys.")
    assert "wrong-secret" not in str(caught.value)


def test_an_error_event_fails_the_run_with_its_text(double, invert, tmp_path: Path) -> None:
    double.error = "Node 2 (ImageInvert): out of memory"
    job = backend_for(double, tmp_path).submit(invert, {"image": png_bytes()})
    with pytest.raises(ServerError) as caught:
        job.result(timeout=5)
    assert str(caught.value) == f"The ViewComfy deployment {URL} reported an error: Node 2 (ImageInvert): out of memory"


def test_broken_or_oversized_outputs_are_refused_and_not_saved(double, invert, tmp_path: Path) -> None:
    backend = backend_for(double, tmp_path)
    double.outputs = [{"filename": "x.png", "content_type": "image/png", "size": 3, "data": "not*base64!"}]
    with pytest.raises(ProtocolError) as broken:
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(broken.value) == (f"The ViewComfy deployment {URL} sent the output 'x.png' in broken base64; "
                                 "run it again.")
    backend.max_output_bytes = 2**20
    double.outputs = [{"filename": "big.png", "content_type": "image/png", "size": 2**20 + 3,
                       "data": base64.b64encode(b"\0" * (2**20 + 3)).decode()}]
    with pytest.raises(ProtocolError) as big:
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(big.value) == f"The output 'big.png' from {URL} is over 1 MB; it was not saved."
    assert not list(tmp_path.rglob("*.png"))


def test_a_stream_without_a_result_is_an_error(double, invert, tmp_path: Path) -> None:
    backend = ViewComfyBackend(URL, client_id="vc-id", client_secret="vc-secret", output_dir=tmp_path,
                               http=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(
                                   201, headers={"content-type": "text/event-stream"},
                                   content=b"event: log_message\ndata: got prompt\n\n"))))
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(caught.value) == f"The ViewComfy deployment {URL} ended the stream without a result; run it again."


def test_the_secret_is_never_shown(double, invert, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = backend_for(double, tmp_path, secret="wrong-secret")
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()})
    assert "wrong-secret" not in "\n".join([repr(backend), str(caught.value), caplog.text, str(vars(caught.value))])


class _Served:
    """The double behind a real HTTP port, for the app (which makes its own httpx client)."""

    def __init__(self, double: ViewComfyDouble) -> None:
        import http.server
        import threading

        def handle(handler: http.server.BaseHTTPRequestHandler) -> None:
            body = handler.rfile.read(int(handler.headers.get("content-length", 0)))
            request = httpx.Request(handler.command, f"http://double{handler.path}", headers=dict(handler.headers),
                                    content=body)
            response = double(request)
            handler.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding"):
                    handler.send_header(name, value)
            handler.send_header("content-length", str(len(response.content)))
            handler.end_headers()
            handler.wfile.write(response.content)

        handler_class = type("Handler", (http.server.BaseHTTPRequestHandler,),
                             {"do_POST": handle, "log_message": lambda *a: None})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/deployment-1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_app_runs_its_invert_tab_unchanged_on_a_viewcomfy_entry(double, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    from comfyui_gradio.web.app import create_app
    from comfyui_gradio.web.config import Settings
    from tests.harness import free_port, only_image, picture

    served = _Served(double)
    settings = Settings(comfyui_url=f"viewcomfy+{served.url}", workflows_dir=WORKFLOWS, output_dir=tmp_path / "out",
                        cache_dir=tmp_path / "cache", server_port=free_port(),
                        backend_keys={"VIEWCOMFY_CLIENT_ID": "vc-id", "VIEWCOMFY_CLIENT_SECRET": "vc-secret"})
    app, pool = create_app(settings)
    app.launch(server_port=settings.server_port, prevent_thread_lock=True, quiet=True,
               allowed_paths=[str(settings.output_dir.resolve())])
    try:
        client = Client(f"http://127.0.0.1:{settings.server_port}/", verbose=False)
        status, gallery, _ = client.predict(image=handle_file(picture(tmp_path, (10, 200, 30))), api_name="/invert")
        assert status.startswith("✅")
        assert only_image(gallery).getpixel((3, 3)) == (245, 55, 225)
        assert double.requests[0]["params"] == {"3-inputs-filename_prefix": "comfyui-gradio/invert"}
    finally:
        app.close()
        pool.close()
        served.close()


def test_a_redirect_is_refused_and_the_secret_is_not_sent_on(invert, tmp_path: Path) -> None:
    """The credentials are plain headers (httpx strips only Authorization on a redirect to another host)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "deploy.example":
            return httpx.Response(307, headers={"location": "https://evil.example/steal"})
        return httpx.Response(500)

    backend = ViewComfyBackend("https://deploy.example/api", client_id="vc-id", client_secret="vc-secret",
                               output_dir=tmp_path, http=httpx.Client(transport=httpx.MockTransport(answer)))
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes((1, 2, 3))})
    assert str(caught.value) == ("The ViewComfy deployment https://deploy.example/api redirected to evil.example "
                                 "(HTTP 307); the credentials were not sent there. Put the deployment's final URL "
                                 "in COMFYUI_URL.")
    assert [r.url.host for r in seen] == ["deploy.example"]
    own = ViewComfyBackend("https://deploy.example/api", client_id="vc-id", client_secret="vc-secret")
    assert own.http.follow_redirects is False  # the client it makes itself does not follow them either
    own.close()


def test_a_deployment_that_cannot_be_reached_is_named_as_such(invert, tmp_path: Path) -> None:
    from tests.harness import free_port

    url = f"http://127.0.0.1:{free_port()}"
    backend = ViewComfyBackend(url, output_dir=tmp_path, client_id="id", client_secret="secret")
    with pytest.raises(ServerUnavailable) as caught:
        backend.submit(invert, {"image": png_bytes()}).result(10)
    backend.close()
    assert str(caught.value).startswith(f"Cannot reach ViewComfy at {url}")
    assert "Start ComfyUI" not in str(caught.value)


# ---- the stream, the result and the saved files, one promise at a time ------------------------------

def answering(invert: TabSpec, tmp_path: Path, status: int = 201, body: bytes = b"",
              content_type: str = "text/event-stream", **kwargs) -> ViewComfyBackend:
    """A backend whose deployment answers every POST with ``status``, ``content_type`` and ``body``."""
    headers = {"content-type": content_type} if content_type else {}
    return ViewComfyBackend(URL, client_id="vc-id", client_secret="vc-secret", output_dir=tmp_path,
                            http=httpx.Client(transport=httpx.MockTransport(
                                lambda r: httpx.Response(status, headers=headers, content=body))), **kwargs)


def result_frame(**result) -> bytes:
    import json
    return f"event: prompt_result\ndata: {json.dumps(result)}\n\n".encode()


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(("body", "content_type", "said"), [
    (b'{"detail": "Deployment is asleep"}', "application/json", "Deployment is asleep"),
    (b'{"error": "No GPU free"}', "application/json", "No GPU free"),
    (b'{"detail": "first", "error": "second"}', "application/json", "first"),
    (b'{"reason": "quota"}', "application/json", "{'reason': 'quota'}"),
    (b'["one", "two"]', "application/json", "['one', 'two']"),
    (b"Bad Gateway from the edge", "text/plain", "Bad Gateway from the edge"),
    (b"", "text/plain", "no reason given"),
    (b"x" * 400, "text/plain", "x" * 300),
    (b'{"detail": "' + b"y" * 400 + b'"}', "application/json", "y" * 300),
])
def test_another_status_is_refused_with_what_the_deployment_said(invert, tmp_path: Path, body: bytes,
                                                                  content_type: str, said: str) -> None:
    backend = answering(invert, tmp_path, status=503, body=body, content_type=content_type)
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()})
    assert str(caught.value) == f"The ViewComfy deployment {URL} answered HTTP 503: {said}"


def test_a_status_200_is_not_success(invert, tmp_path: Path) -> None:
    """The guide's success is 201: a 200 (a proxy's page, say) is refused with its text."""
    backend = answering(invert, tmp_path, status=200, body=b"hello", content_type="text/html")
    with pytest.raises(ServerError, match="answered HTTP 200: hello$"):
        backend.submit(invert, {"image": png_bytes()})


def test_a_403_is_a_refusal_of_the_credentials(invert, tmp_path: Path) -> None:
    backend = answering(invert, tmp_path, status=403, body=b'{"detail": "no"}', content_type="application/json")
    with pytest.raises(ServerError, match=r"refused the credentials \(HTTP 403\); set VIEWCOMFY_CLIENT_ID"):
        backend.submit(invert, {"image": png_bytes()})


def test_a_redirect_without_a_location_says_another_address(invert, tmp_path: Path) -> None:
    backend = answering(invert, tmp_path, status=302, content_type="")
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()})
    assert str(caught.value).startswith(f"The ViewComfy deployment {URL} redirected to another address (HTTP 302);")


def test_a_broken_send_is_a_server_error(invert, tmp_path: Path) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    backend = ViewComfyBackend(URL, client_id="vc-id", client_secret="vc-secret", output_dir=tmp_path,
                               http=httpx.Client(transport=httpx.MockTransport(broken)))
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()})
    assert type(caught.value) is ServerError
    assert str(caught.value) == f"The ViewComfy deployment {URL} did not answer properly (timed out); try again."


def test_an_answer_without_an_event_stream_is_a_protocol_error(invert, tmp_path: Path) -> None:
    backend = answering(invert, tmp_path, body=b'{"outputs": []}', content_type="application/json")
    job = backend.submit(invert, {"image": png_bytes()})
    with pytest.raises(ProtocolError) as caught:
        job.result(timeout=5)
    assert str(caught.value) == (f"The ViewComfy deployment {URL} answered without an event stream although "
                                 "logs=true was sent.")
    assert Started() not in list(job.events())


def test_a_stream_that_breaks_is_a_server_error(invert, tmp_path: Path) -> None:
    class Breaking(httpx.SyncByteStream):
        def __iter__(self):
            yield b"event: log_message\ndata: got prompt\n\n"
            raise httpx.ReadError("connection reset")

    backend = ViewComfyBackend(URL, client_id="vc-id", client_secret="vc-secret", output_dir=tmp_path,
                               http=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(
                                   201, headers={"content-type": "text/event-stream"}, stream=Breaking()))))
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(caught.value) == (f"The connection to the ViewComfy deployment {URL} broke during the run "
                                 "(connection reset); run it again.")


def test_log_lines_in_text_json_strings_and_objects_are_logged_as_their_text(invert, tmp_path: Path) -> None:
    frames = (b'event: log_message\ndata: plain line\n\n'
              b'event: log_message\ndata: "a json string"\n\n'
              b'event: log_message\ndata: {"message": "from message", "error": "not this"}\n\n'
              b'event: log_message\ndata: {"error": "from error", "detail": "not this"}\n\n'
              b'event: log_message\ndata: {"detail": "from detail"}\n\n'
              b'event: log_message\ndata: {"other": 1}\n\n'
              b'event: log_message\ndata: 42\n\n'
              b'event: log_message\ndata: {"message": " 10%|#   | 3/30 [00:01<00:09, 3.00it/s]"}\n\n'
              + result_frame(status="success", completed=True, outputs=[]))
    job = answering(invert, tmp_path, body=frames).submit(invert, {"image": png_bytes()})
    job.result(timeout=5)
    events = [e for e in job.events() if isinstance(e, (Log, Progress))]
    assert events == [Log("plain line"), Log("a json string"), Log("from message"), Log("from error"),
                      Log("from detail"), Log("{'other': 1}"), Log("42"),
                      Log(" 10%|#   | 3/30 [00:01<00:09, 3.00it/s]"), Progress("", "Running", 3, 30)]


def test_an_error_event_as_a_json_object_gives_its_message(invert, tmp_path: Path) -> None:
    frames = b'event: error\ndata: {"error": "Prompt outputs failed validation"}\n\n' + result_frame(outputs=[])
    with pytest.raises(ServerError) as caught:
        answering(invert, tmp_path, body=frames).submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(caught.value) == (f"The ViewComfy deployment {URL} reported an error: "
                                 "Prompt outputs failed validation")


def test_server_sent_events_are_read_as_the_standard_says(invert, tmp_path: Path) -> None:
    """CRLF line ends, comments, ids, multi-line data joined by newlines, "data:" without a space, an event
    name that lasts one frame only, and a last frame without its blank line."""
    png = png_bytes((1, 2, 3))
    import json
    result = json.dumps({"status": "success", "completed": True,
                         "outputs": [{"filename": "a.png", "data": encoded(png)}]})
    frames = ("event:log_message\r\ndata:first\r\ndata: second\r\n\r\n"
              ": keep-alive comment\r\n\r\n"
              "id: 7\r\nevent: log_message\r\ndata: with id\r\n\r\n"
              "data: an unnamed message, ignored\n\n"
              "event: log_message\n\n"  # a frame without data: nothing
              "retry: 100\n\n"
              f"event: prompt_result\ndata: {result}")  # no blank line at the end
    job = answering(invert, tmp_path, body=frames.encode()).submit(invert, {"image": png_bytes()})
    (image,) = job.result(timeout=5).images
    assert [e for e in job.events() if isinstance(e, Log)] == [Log("first\nsecond"), Log("with id")]
    assert image.path.read_bytes() == png


def test_an_event_name_does_not_carry_over_to_the_next_frame(invert, tmp_path: Path) -> None:
    frames = b"event: error\ndata: one\n\ndata: two\n\n" + result_frame(outputs=[])
    with pytest.raises(ServerError, match="reported an error: one$"):
        answering(invert, tmp_path, body=frames).submit(invert, {"image": png_bytes()}).result(timeout=5)
    frames = b"event: error\n\ndata: {}\n\n" + result_frame(outputs=[])  # the dataless frame resets the name
    assert answering(invert, tmp_path, body=frames).submit(invert, {"image": png_bytes()}).result(5).outputs == []


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", f"The ViewComfy deployment {URL} sent a result that is not JSON"),
    ('["a", "list"]', f"The ViewComfy deployment {URL} sent a result that is not a JSON object"),
])
def test_a_result_that_is_not_a_json_object_is_a_protocol_error(invert, tmp_path: Path, data: str,
                                                                 message: str) -> None:
    frames = f"event: prompt_result\ndata: {data}\n\n".encode()
    with pytest.raises(ProtocolError) as caught:
        answering(invert, tmp_path, body=frames).submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(caught.value) == message


@pytest.mark.parametrize(("result", "shown"), [
    ({"status": "success", "completed": False, "outputs": []}, "'success'"),
    ({"status": "ERROR", "completed": True, "outputs": []}, "'ERROR'"),
    ({"status": "Failed", "outputs": []}, "'Failed'"),
    ({"completed": False, "outputs": []}, "None"),
])
def test_a_result_that_did_not_complete_fails_the_run(invert, tmp_path: Path, result: dict, shown: str) -> None:
    backend = answering(invert, tmp_path, body=result_frame(**result))
    with pytest.raises(ServerError) as caught:
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(caught.value) == (f"The run did not complete on the ViewComfy deployment {URL} (status {shown}); "
                                 "check the deployment's logs, then run it again.")


@pytest.mark.parametrize("result", [{"status": "success", "completed": True},
                                    {"status": "success", "completed": True, "outputs": None},
                                    {"status": "done", "outputs": []}])
def test_a_completed_result_without_outputs_saves_nothing(invert, tmp_path: Path, result: dict) -> None:
    run = answering(invert, tmp_path, body=result_frame(**result)).submit(invert, {"image": png_bytes()})
    assert run.result(timeout=5).outputs == []
    assert not list(tmp_path.rglob("*.*"))


def test_each_output_is_saved_with_its_bytes_under_its_file_name(invert, tmp_path: Path) -> None:
    import dataclasses

    png, text = png_bytes((9, 8, 7)), "a caption\nwith \xe9".encode()
    outputs = [{"filename": "first_00001_.png", "data": encoded(png)},
               {"filename": "caption.txt", "data": encoded(text)},
               {"data": encoded(b"\x00\x01raw")}]
    two = dataclasses.replace(invert, outputs=invert.outputs * 2)  # not one output: named by file name
    job = answering(invert, tmp_path, body=result_frame(status="success", outputs=outputs)).submit(
        two, {"image": png_bytes()})
    files = job.result(timeout=5).outputs
    assert [(f.path.name, f.kind, f.node_id, f.output_name, f.text) for f in files] == [
        ("output_first_00001_.png", "image", "", "first_00001_", None),
        ("output_caption.txt", "text", "", "caption", "a caption\nwith \xe9"),
        ("output_output", "file", "", "output", None)]
    assert [f.path.read_bytes() for f in files] == [png, text, b"\x00\x01raw"]
    assert {f.path.parent for f in files} == {tmp_path / job.prompt_id}


def test_with_one_output_in_the_schema_every_file_takes_its_name(invert, tmp_path: Path) -> None:
    outputs = [{"filename": "a.png", "data": encoded(png_bytes())}, {"filename": "a.png", "data": encoded(b"2")}]
    job = answering(invert, tmp_path, body=result_frame(outputs=outputs)).submit(invert, {"image": png_bytes()})
    files = job.result(timeout=5).outputs
    assert [f.output_name for f in files] == ["inverted", "inverted"]
    assert len({f.path for f in files}) == 2 and files[1].path.read_bytes() == b"2"  # a taken name is not overwritten


@pytest.mark.parametrize(("item", "name"), [({"filename": "x.png"}, "x.png"), ({"filename": "x.png", "data": ""}, "x.png"),
                                            ({"filename": "x.png", "data": 5}, "x.png"), ({}, "output"),
                                            ({"filename": "", "data": None}, "output")])
def test_an_output_without_inline_data_is_refused(invert, tmp_path: Path, item: dict, name: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        answering(invert, tmp_path, body=result_frame(outputs=[item])).submit(invert, {"image": png_bytes()}).result(5)
    assert str(caught.value) == (f"The ViewComfy deployment {URL} sent the output {name!r} without its data "
                                 "(stored elsewhere?); this app reads outputs sent inline only.")
    assert not list(tmp_path.rglob("*.png"))


def test_the_size_limit_refuses_only_what_is_over_it(invert, tmp_path: Path) -> None:
    backend = answering(invert, tmp_path, body=result_frame(outputs=[{"filename": "at.bin",
                                                                      "data": encoded(b"\1" * 3 * 2**20)}]))
    backend.max_output_bytes = 3 * 2**20  # exactly at the limit: saved
    (saved,) = backend.submit(invert, {"image": png_bytes()}).result(timeout=5).outputs
    assert saved.path.read_bytes() == b"\1" * 3 * 2**20
    backend.max_output_bytes = 3 * 2**20 - 1
    with pytest.raises(ProtocolError) as caught:
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)
    assert str(caught.value) == f"The output 'at.bin' from {URL} is over 3 MB; it was not saved."


def test_base64_with_stray_characters_is_broken(invert, tmp_path: Path) -> None:
    """``validate=True``: a decoder that skipped non-alphabet characters would save other bytes."""
    data = encoded(b"abcdef")[:4] + "\n" + encoded(b"abcdef")[4:]
    backend = answering(invert, tmp_path, body=result_frame(outputs=[{"filename": "x.bin", "data": data}]))
    with pytest.raises(ProtocolError, match="sent the output 'x.bin' in broken base64; run it again.$"):
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)


def test_its_own_client_waits_long_for_events_and_closes_with_it(tmp_path: Path) -> None:
    own = ViewComfyBackend(URL + "/", client_id="vc-id", client_secret="vc-secret")
    assert own.url == URL
    assert own.http.timeout == httpx.Timeout(30.0, read=2400.0)
    own.close()
    assert own.http.is_closed
    injected = httpx.Client()
    ViewComfyBackend(URL, client_id="a", client_secret="b", http=injected).close()
    assert not injected.is_closed  # a client handed in is the caller's to close
    injected.close()


@pytest.mark.parametrize(("raised", "detail"), [(httpx.ConnectError("Connection refused"), "Connection refused"),
                                                (httpx.ConnectTimeout(""), "ConnectTimeout")])
def test_an_unreachable_deployment_says_what_went_wrong(invert, tmp_path: Path, raised: Exception,
                                                        detail: str) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise raised

    backend = ViewComfyBackend(URL, client_id="vc-id", client_secret="vc-secret", output_dir=tmp_path,
                               http=httpx.Client(transport=httpx.MockTransport(unreachable)))
    with pytest.raises(ServerUnavailable) as caught:
        backend.submit(invert, {"image": png_bytes()})
    assert str(caught.value) == (f"Cannot reach ViewComfy at {URL} ({detail}). Check its address in COMFYUI_URL "
                                 "and that this machine can reach it, then try again.")


def test_a_node_without_inputs_has_no_params() -> None:
    assert flat_params({"9": {"class_type": "Note"}, "3": {"inputs": {"seed": 1}}}) == {"3-inputs-seed": 1}


def test_an_answer_without_a_content_type_is_not_a_stream(invert, tmp_path: Path) -> None:
    backend = answering(invert, tmp_path, body=result_frame(outputs=[]), content_type="")
    with pytest.raises(ProtocolError, match="answered without an event stream although logs=true was sent.$"):
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)


def test_a_text_output_that_is_not_utf8_is_still_shown(invert, tmp_path: Path) -> None:
    outputs = [{"filename": "caption.txt", "data": encoded(b"caf\xe9 \xff")}]  # Latin-1, not UTF-8
    (text,) = answering(invert, tmp_path, body=result_frame(outputs=outputs)).submit(
        invert, {"image": png_bytes()}).result(timeout=5).outputs
    assert text.text == "caf\ufffd \ufffd" and text.path.read_bytes() == b"caf\xe9 \xff"


def test_log_text_keeps_its_own_trailing_characters(invert, tmp_path: Path) -> None:
    frames = (b"event: log_message\ndata: ends in spaces   \n\n"
              b"event: log_message\ndata: ends in XX\n\n" + result_frame(outputs=[]))
    job = answering(invert, tmp_path, body=frames).submit(invert, {"image": png_bytes()})
    job.result(timeout=5)
    assert [e for e in job.events() if isinstance(e, Log)] == [Log("ends in spaces   "), Log("ends in XX")]


def test_a_last_frame_without_its_blank_line_joins_its_data_lines(invert, tmp_path: Path) -> None:
    frames = b'event: prompt_result\ndata: {"status": "success",\ndata: "outputs": []}'
    assert answering(invert, tmp_path, body=frames).submit(invert, {"image": png_bytes()}).result(5).outputs == []


def test_the_size_limit_is_on_whole_decoded_bytes(invert, tmp_path: Path) -> None:
    """Five base64 characters hold three whole bytes: not over a 3-byte limit, so they are decoded (and refused as
    base64 without its padding) rather than called too big."""
    backend = answering(invert, tmp_path, body=result_frame(outputs=[{"filename": "x.bin", "data": "AAAAA"}]))
    backend.max_output_bytes = 3
    with pytest.raises(ProtocolError, match="sent the output 'x.bin' in broken base64; run it again.$"):
        backend.submit(invert, {"image": png_bytes()}).result(timeout=5)


def test_a_data_line_loses_one_space_only_so_an_indented_log_line_keeps_its_indent() -> None:
    from comfyui_gradio.comfy.viewcomfy import _sse

    frames = ["event: log\n", "data:   indented line\n", "data:tight\n", "\n"]
    assert list(_sse(iter(frames))) == [("log", "  indented line\ntight")]  # as EventSource reads it
