"""schemathesis against the server's own OpenAPI, every route, with auth on and off, predictions
logged to a real store (so /feedback and /dashboard work): no 5xx, and JSON bodies that match the
schema the app declares."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from dlpipe.pipeline import Pipeline
from dlpipe.serve.app import Settings
from loopback import running, wine_config

pytestmark = pytest.mark.slow
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = 30  # cases per route (fewer where a route has fewer inputs): 610 requests per auth mode


@pytest.fixture(scope="module")
def model(with_onnx, tmp_path_factory):
    return Pipeline.from_dict(wine_config(epochs=2)).run(tmp_path_factory.mktemp("runs")).model_folder


@pytest.mark.parametrize("token", [None, "fuzz"])
def test_no_route_answers_5xx(model, token, tmp_path):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    store = f"sqlite:///{tmp_path / 'monitor.db'}"  # /feedback and /dashboard work against a real store
    calls = []
    with running(model, settings=Settings(token=token), store=store) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)
        operations = [result.ok() for result in schema.get_all_operations()]
        routes = {operation.path for operation in operations}
        assert {"/predict", "/invocations", "/feedback", "/dashboard", "/metrics"} <= routes
        assert len(operations) >= 12  # every route the app declares

        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck), database=None)
            def no_server_error(case):
                for sent in (headers, {}):  # with the token, and without it
                    response = case.call(headers=sent)
                    calls.append(response.status_code)
                    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
                    if token and not sent and not case.formatted_path.startswith("/v2/health"):
                        assert response.status_code == 401
                    elif sent == headers:
                        case.validate_response(response, checks=CHECKS, headers=sent)

            no_server_error()
    print(f"{len(operations)} routes, {len(calls)} requests, token {'on' if token else 'off'}")
    assert len(calls) >= 2 * len(operations) * 5
