"""The bearer token on a real server on loopback: with one set, every route the app has (enumerated
from the FastAPI app, not listed here) answers 401 without it, but the two health probes; admin
routes refuse (403) on a server started without a token."""

from __future__ import annotations

import re

import httpx
import pytest

from dlpipe.serve.app import Settings, create_app
from dlpipe.serve.operations import OPEN_PATHS
from dlpipe.serve.runtime import Runtime
from loopback import running

TOKEN = "s3cret-token-for-the-test"


@pytest.fixture(scope="module")
def requests(packaged_model) -> list[tuple[str, str]]:
    """(method, concrete path) for every route and method of the app, path parameters filled in."""
    runtime = Runtime(packaged_model, runtime="torch", threads=1)
    app = create_app(runtime, Settings(token=TOKEN))
    out = []
    for route in app.routes:
        path = re.sub(r"\{name\}", runtime.name, route.path)
        path = re.sub(r"\{[^}]+\}", "1", path)
        out += [(method, path) for method in sorted(route.methods or ())]
    return out


def test_every_route_but_health_needs_the_token(packaged_model, tmp_path, requests):
    paths = {path for _, path in requests}
    # what the app serves, as users know it: nothing here may be missing from the enumeration
    assert {"/docs", "/openapi.json", "/metrics", "/dashboard", "/feedback", "/admin/reload"} <= paths
    assert {"/predict", "/invocations", "/v2", "/v2/models/iris", "/v2/models/iris/versions/1/infer"} <= paths
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with running(packaged_model, settings=Settings(token=TOKEN), store=store) as url, httpx.Client(base_url=url) as c:
        for method, path in [*requests, ("GET", "/no-such-route"), ("GET", "/v2/health/%2e%2e/%2e%2e/metrics")]:
            if path in OPEN_PATHS:
                continue
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                answer = c.request(method, path, headers=headers)
                assert answer.status_code == 401, (method, path, headers, answer.status_code)
                assert answer.headers["www-authenticate"] == "Bearer"
            # with the token the request reaches the route (which may then refuse its empty body)
            answer = c.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code != 401, (method, path)
        for path in OPEN_PATHS:
            assert c.get(path).status_code == 200
        assert c.get("/v2/health/live/").status_code == 401  # only the exact probe paths are open
    checked = len([r for r in requests if r[1] not in OPEN_PATHS])
    assert checked >= 20


def test_admin_routes_refuse_without_a_token_even_when_the_server_has_none(packaged_model, requests):
    admin = [(method, path) for method, path in requests if path.startswith("/admin/")]
    assert admin == [("POST", "/admin/reload")]
    with running(packaged_model) as url, httpx.Client(base_url=url) as client:
        assert client.post("/predict", json={"instances": []}).status_code == 400  # the API itself is open
        for method, path in admin:
            answer = client.request(method, path)
            assert answer.status_code == 403 and "need a token" in answer.json()["error"]
            answer = client.request(method, path, headers={"Authorization": "Bearer anything"})
            assert answer.status_code == 403
    with running(packaged_model, settings=Settings(token=TOKEN)) as url, httpx.Client(base_url=url) as client:
        for method, path in admin:  # with the token: past the guard (this server follows no alias)
            assert client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 409
