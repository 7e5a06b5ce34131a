"""A real server with --api-auth and TLS (--tls-keyfile / --tls-certfile handed to uvicorn): webuiapi over
HTTPS with credentials, 401 without, and ten requests at once over real sockets, all answered in order."""

import base64
import io
import os
import shutil
import subprocess
import sys
import threading

import pytest
import requests
from PIL import Image

from sdweb.testing.server import free_port, stop_process_group, wait_until_answers

webuiapi = pytest.importorskip("webuiapi")
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

USER, PASSWORD = "alice", "wonder:land"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("tls")
    key, cert = data / "key.pem", data / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(data / "gradio")}
    process = subprocess.Popen([sys.executable, "-m", "sdweb", "--nowebui", "--no-download-sd-model", "--data-dir", str(data), "--port",
                                str(port), "--api-auth", f"{USER}:{PASSWORD}", "--tls-keyfile", str(key),
                                "--tls-certfile", str(cert)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"https://127.0.0.1:{port}"
    wait_until_answers(f"{base}/internal/ping", process, verify=str(cert))
    yield base, port, cert
    stop_process_group(process)


def test_https_and_basic_auth(server):
    base, _, cert = server
    assert requests.get(f"{base}/sdapi/v1/options", verify=str(cert), timeout=30).status_code == 401
    wrong = requests.get(f"{base}/sdapi/v1/options", auth=(USER, "nope"), verify=str(cert), timeout=30)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Basic"
    assert requests.get(f"{base}/sdapi/v1/options", auth=(USER, PASSWORD), verify=str(cert), timeout=30).ok
    with pytest.raises(requests.ConnectionError):
        requests.get(base.replace("https", "http") + "/internal/ping", timeout=5)
    flags = requests.get(f"{base}/sdapi/v1/cmd-flags", auth=(USER, PASSWORD), verify=str(cert), timeout=30)
    assert PASSWORD not in flags.text and flags.json()["api_auth"] == "<hidden>"


@pytest.mark.slow  # CI time (30 min for everything); ./run-tests.sh -m slow runs it
def test_webuiapi_over_https_with_credentials(server):
    _, port, cert = server
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port, use_https=True, sampler="Euler a", steps=2)
    api.session.verify = str(cert)
    api.session.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment overrides session.verify
    api.set_auth(USER, PASSWORD)
    result = api.txt2img(prompt="a lighthouse", seed=3, width=64, height=64)
    assert result.image.size == (64, 64) and result.info["seed"] == 3
    assert api.get_progress()["state"]["job_count"] == 0
    assert "Euler a" in api.util_get_sampler_names()


def test_ten_requests_at_once_over_sockets(server):
    base, _, cert = server
    answers: dict[int, requests.Response] = {}

    def send(index: int) -> None:
        answers[index] = requests.post(f"{base}/sdapi/v1/txt2img", auth=(USER, PASSWORD), verify=str(cert),
                                       timeout=300, json={"prompt": f"n{index}", "seed": 100 + index,
                                                          "width": 64, "height": 64, "steps": 2})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(answers) == list(range(10)) and all(a.status_code == 200 for a in answers.values())
    for index, answer in answers.items():
        image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
        assert f"Seed: {100 + index}," in image.info["parameters"]
