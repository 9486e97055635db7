"""schemathesis against the server's own OpenAPI, every route, with auth on and off: no 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from dlpipe.pipeline import Pipeline
from dlpipe.serve.app import Settings
from loopback import running, wine_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(with_onnx, tmp_path_factory):
    return Pipeline.from_dict(wine_config(epochs=2)).run(tmp_path_factory.mktemp("runs")).model_folder


@pytest.mark.parametrize("token", [None, "fuzz"])
def test_no_route_answers_5xx(model, token, tmp_path):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    store = f"sqlite:///{tmp_path / 'monitor.db'}"  # /feedback and /dashboard work against a real store
    with running(model, settings=Settings(token=token), store=store) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 12  # every route the app declares, /feedback and /dashboard too

        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def no_server_error(case):
                for sent in (headers, {}):  # with the token, and without it
                    response = case.call(headers=sent)
                    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
                    if token and not sent and not case.formatted_path.startswith("/v2/health"):
                        assert response.status_code == 401

            no_server_error()
