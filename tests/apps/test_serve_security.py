"""`medden serve` answers only its own Host names (DNS rebinding) and state changes from its own
page only (cross-site request forgery): :mod:`medden.apps.serve.security`, through FastAPI's
TestClient. Most POSTs here send a text file, which the app refuses with 415 before loading a
bundle: a 415 shows the request got past the guard."""

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason='the web viewer needs the serve extra: pip install "medden[serve]"')
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (the test extra)")

from fastapi.testclient import TestClient

from medden.apps.cli import main
from medden.apps.serve import create_app
from medden.apps.serve.security import RequestGuard, accepted_hosts

SERVER = "http://127.0.0.1:8000"
TEXT = {"file": ("notes.txt", b"these are notes, not an image\n")}


def _client(base_url: str = SERVER, **options) -> TestClient:
    return TestClient(create_app(["general_denoiser"], device="cpu", **options), base_url=base_url)


@pytest.fixture(scope="module")
def client():
    with _client() as c:
        yield c


def _reached_the_app(answer) -> bool:
    return answer.status_code == 415 and "not a type the viewer reads" in answer.json()["detail"]


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(out, format="PNG")
    return out.getvalue()


# ----------------------------------------------------------------------------- Host (DNS rebinding)


@pytest.mark.parametrize("host", ["evil.example:8000", "evil.example", "localhost.evil.example",
                                  "127.0.0.1.nip.io:8000", "192.168.1.20:8000", "[::1]x", "localhost:http"])
def test_a_host_the_server_is_not_bound_to_is_refused_with_400(client, host):
    for answer in (client.get("/api/health", headers={"Host": host}),
                   client.get("/api/progress/" + "a" * 20, headers={"Host": host}),
                   client.get("/api/jobs/" + "b" * 22 + "/slices/0/noisy.f32", headers={"Host": host}),
                   client.post("/api/denoise", files=TEXT, headers={"Host": host})):
        assert answer.status_code == 400
        detail = answer.json()["detail"]
        assert repr(host) in detail and "DNS rebinding" in detail and "--allowed-host" in detail
        assert "127.0.0.1, [::1], localhost" in detail  # what is allowed


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LocalHost:8000", "127.0.0.1:54321",
                                  "[::1]:8000"])
def test_a_loopback_bind_answers_every_loopback_name_on_any_port(client, host):
    assert client.get("/api/health", headers={"Host": host}).json() == {"status": "ok"}
    assert client.get("/api/health", headers={"Host": "evil-" + host}).status_code == 400


def test_allowed_hosts_adds_names_and_an_all_interfaces_bind_answers_any():
    with _client(allowed_hosts=["viewer.example.org"]) as proxied:
        assert proxied.get("/api/health", headers={"Host": "viewer.example.org:443"}).status_code == 200
        assert proxied.get("/api/health", headers={"Host": "localhost"}).status_code == 200
        assert proxied.get("/api/health", headers={"Host": "evil.example"}).status_code == 400
    with _client(host="0.0.0.0") as exposed:  # no one name to check: exposed to the network (documented)
        assert exposed.get("/api/health", headers={"Host": "anything.lan:8000"}).status_code == 200
        refused = exposed.post("/api/denoise", files=TEXT, headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403  # but still no cross-origin POST
    with _client(host="::", allowed_hosts=["ws1.lan"]) as named:  # all interfaces, answering one name
        assert named.get("/api/health", headers={"Host": "ws1.lan"}).status_code == 200
        assert named.get("/api/health", headers={"Host": "ws2.lan"}).status_code == 400


def test_accepted_hosts_per_bind():
    assert accepted_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert accepted_hosts("[::1]") == accepted_hosts("localhost") == accepted_hosts("127.0.0.5") - {"127.0.0.5"}
    assert accepted_hosts("192.168.1.20", ["WS1.lan"]) == {"192.168.1.20", "ws1.lan"}
    assert accepted_hosts("0.0.0.0") is None and accepted_hosts("::") is None
    assert accepted_hosts("0.0.0.0", ["ws1.lan"]) == {"ws1.lan", "localhost", "127.0.0.1", "::1"}


@pytest.mark.parametrize("name", ["viewer.example.org:8443", "http://viewer.example.org", "*.example.org", ""])
def test_a_bad_allowed_host_is_refused_at_creation(name):
    with pytest.raises(ValueError, match=r"allowed_hosts: .* is not a host name or IP address; give the bare name"):
        create_app(["general_denoiser"], allowed_hosts=[name])
    with pytest.raises(TypeError, match="allowed_hosts: expected a host name"):
        accepted_hosts("127.0.0.1", [b"viewer.example.org"])


def test_a_missing_or_repeated_host_header_is_refused():
    guard = RequestGuard(None, accepted=accepted_hosts("127.0.0.1"))
    scope = {"type": "http", "method": "GET", "scheme": "http", "headers": []}
    assert guard.refusal(scope)[0] == 400 and "no Host header" in guard.refusal(scope)[1]
    scope["headers"] = [(b"host", b"127.0.0.1"), (b"host", b"evil.example")]
    assert guard.refusal(scope) == (400, "the request has several Host headers; send one.")
    scope["headers"] = scope["headers"][:1]
    assert guard.refusal(scope) is None


# ----------------------------------------------------------------------------- Origin (cross-site request forgery)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:3000", "https://127.0.0.1:8000",
                                    "http://localhost:8000"])
def test_a_cross_origin_post_is_refused_with_403(client, origin):
    answer = client.post("/api/denoise", files=TEXT, headers={"Origin": origin})
    assert answer.status_code == 403
    detail = answer.json()["detail"]
    assert detail.startswith(f"cross-origin POST refused: it comes from {origin!r}")
    assert "this server's origin is 'http://127.0.0.1:8000'" in detail


def test_a_same_origin_post_is_denoised():
    with _client("http://[::1]:8000", host="::1") as c:
        answer = c.post("/api/denoise", files={"file": ("a.png", _png())}, headers={"Origin": "http://[::1]:8000"})
        assert answer.status_code == 200 and answer.json()["shape"] == [1, 8, 8, 1]
        refused = c.post("/api/denoise", files=TEXT, headers={"Origin": "http://[::1]:8001"})
        assert refused.status_code == 403


def test_same_origin_ignores_case_and_default_ports():
    with _client("http://localhost") as c:
        for origin in ("http://localhost", "HTTP://LocalHost:80"):
            assert _reached_the_app(c.post("/api/denoise", files=TEXT, headers={"Origin": origin}))
        assert c.post("/api/denoise", files=TEXT, headers={"Origin": "http://localhost:8080"}).status_code == 403


def test_a_post_without_origin_is_answered_like_curl(client):
    assert _reached_the_app(client.post("/api/denoise", files=TEXT))
    assert client.post("/api/denoise", files=TEXT, headers={"Origin": "http://evil.example"}).status_code == 403


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
def test_sec_fetch_site_from_another_page_is_refused_without_origin(client, site):
    answer = client.post("/api/denoise", files=TEXT, headers={"Sec-Fetch-Site": site})
    assert answer.status_code == 403
    assert f"'Sec-Fetch-Site: {site}'" in answer.json()["detail"]
    for own in ("same-origin", "none"):
        assert _reached_the_app(client.post("/api/denoise", files=TEXT, headers={"Sec-Fetch-Site": own}))


def test_other_state_changing_methods_are_checked_and_gets_are_not(client):
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    for method in ("PUT", "DELETE", "PATCH"):
        assert client.request(method, "/api/denoise", headers=evil).status_code == 403
        assert client.request(method, "/api/denoise").status_code == 405  # no such route
    assert client.get("/api/health", headers=evil).status_code == 200  # changes nothing; unreadable cross-origin
    assert "access-control-allow-origin" not in client.get("/api/health", headers=evil).headers


# ----------------------------------------------------------------------------- command line


def test_cli_passes_allowed_hosts_and_refuses_a_bad_one(monkeypatch, capsys):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.update(app=app, **kwargs))
    assert main(["serve", "--bundles", "general_denoiser", "--allowed-host", "a.lan", "--allowed-host", "b.lan"]) == 0
    with TestClient(started["app"], base_url="http://b.lan") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"Host": "c.lan"}).status_code == 400
    assert main(["serve", "--bundles", "general_denoiser", "--allowed-host", "a.lan:8080"]) == 1
    assert "allowed_hosts: 'a.lan:8080' is not a host name" in capsys.readouterr().err
