"""Every documented operation, fuzzed: never a 5xx, never an answer its schema does not allow.

Schemathesis reads a real server's ``/openapi.json`` and sends each operation requests
built from its documented examples (which reach past the 404s: a job of a program that
exists, on a backend that exists), then generated from its schemas, valid and invalid,
as the admin. The examples per operation are few, so that the file runs in about a
minute on two cores: this catches kinds of mistakes (an unbounded integer, a pydantic
error escaping a route, an error body off its schema), not rare values. WebSocket
routes are not in OpenAPI.

Schemathesis' own pytest integration (``from_fixture``) does not run under pytest 9,
so the operations are driven here with its Python API, one Hypothesis test each.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

#: Cases per operation: from its documented examples, from valid data, from invalid data.
EXAMPLES = {"examples": 3, "positive": 15, "negative": 10}
#: Past this, the operations not yet fuzzed are not, and the test fails to say so.
TIME_BOUND = 180.0
#: Sent with every case: the IBM-shaped routes refuse a Service-CRN that is not a CRN,
#: which would stop most generated cases before they reach the route.
HEADERS = {"Service-CRN": "crn:v1:qruntime:public:quantum-computing:local:a/fuzz::"}

#: Operations that would break the run itself, and why.
EXCLUDED = {
    # Logging out revokes the access token that every other case is sent with.
    ("POST", "/logout"),
}


@pytest.fixture
def admin_headers(server: Any) -> dict[str, str]:
    answer = httpx.post(
        f"{server.url}/users/loginWithToken", json={"apiToken": server.admin_token}, timeout=30
    )
    return {**HEADERS, "Authorization": f"Bearer {answer.raise_for_status().json()['id']}"}


def _strategy(schema: Any, operation: Any, kind: str) -> Any:
    if kind == "examples":
        examples = schema.get_strategies_from_examples(operation)
        return st.one_of(examples) if examples else None
    return operation.as_strategy(generation_mode=GenerationMode(kind))


def _fuzz(strategy: Any, examples: int, headers: dict[str, str]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=30,
        )

    fuzz()


@pytest.mark.timeout(TIME_BOUND + 60)
def test_no_operation_answers_5xx_or_off_its_schema(
    server: Any, admin_headers: dict[str, str]
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30, "the OpenAPI description lost its operations"
    deadline = time.monotonic() + TIME_BOUND
    failures: list[str] = []
    for operation in operations:
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        for kind, examples in EXAMPLES.items():
            if time.monotonic() > deadline:
                failures.append(f"{operation.label} ({kind}): not fuzzed, out of time")
                continue
            strategy = _strategy(schema, operation, kind)
            if strategy is None:
                continue
            try:
                _fuzz(strategy, examples, admin_headers)
            except Unsatisfiable:
                pass  # no invalid input exists: every parameter is a free string
            except Exception as exc:
                failures.append(f"{operation.label} ({kind}):\n{exc}")
    assert not failures, "\n\n".join(failures)
