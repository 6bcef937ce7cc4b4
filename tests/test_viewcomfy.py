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
