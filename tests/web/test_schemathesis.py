"""Every operation of the served OpenAPI document, driven by schemathesis against a real server: never a 5xx.

Each operation gets valid and invalid generated requests (schemathesis'
positive and negative modes), once with random ids and once with the ids of a
real project and session so the handlers get past "no such project" and run
their queries. Three callers: the local admin token, a user's personal write
token (so the token routes do something) and nobody. Examples are bounded so
the whole module runs in about a minute on two cores; the traceback gate
(tests/conftest.py) also fails the run on any error the server logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation, BaseSchema

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from hitmetrix.web.openapi import openapi_document
from tests.support import ServerProcess, make_batch, wait_for

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 30
OPERATIONS = [(method.upper(), path) for path, methods in openapi_document()["paths"].items() for method in methods]
CALLERS = ("admin-token", "personal-token", "signed-out")
FUZZER_EMAIL = "fuzzer@example.test"


@dataclass
class Target:
    server: ServerProcess
    schema: BaseSchema
    real_ids: dict[str, int | str]  # path parameters naming things that exist
    fuzzer_user_id: int


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis") / "data"
    server = ServerProcess(data_dir, demo=True).start()
    try:
        admin = {"Authorization": f"Bearer {server.admin_token}"}
        demo = next(p for p in httpx.get(server.url + "/api/v1/projects", headers=admin).json() if p["name"] == "demo")
        batch = make_batch(events=3, chunks=2, user_id="fuzz-user")
        answer = httpx.post(server.url + "/api/v1/batch", params={"key": demo["public_key"]}, json=batch, timeout=30)
        assert answer.status_code == 200, answer.text

        def stored() -> bool:
            found = server.api(f"/api/v1/projects/{demo['id']}/sessions/{batch['session_id']}")
            return found.status_code == 200 and len(found.json()["recording_chunks"]) == 2

        wait_for(stored, 30, 0.1, what="the seeded session in the store")
        meta = MetaStore("", data_dir)
        try:
            user = accounts.create_user(meta, FUZZER_EMAIL, "fuzzer password 1234")
            accounts.add_member(meta, demo["id"], user.id, "owner")
        finally:
            meta.close()
        schema = schemathesis.openapi.from_url(server.url + "/api/openapi.json")
        real_ids: dict[str, int | str] = {"project_id": demo["id"], "session_id": batch["session_id"], "seq": 1}
        yield Target(server, schema, real_ids, user.id)
    finally:
        server.stop()


def caller_headers(target: Target, caller: str) -> dict[str, str]:
    if caller == "admin-token":
        return {"Authorization": f"Bearer {target.server.admin_token}"}
    if caller == "personal-token":
        # A fresh token per test: the fuzzer may well revoke the one it is using.
        meta = MetaStore("", target.server.data_dir)
        try:
            _, token = accounts.create_api_token(meta, target.fuzzer_user_id, "fuzz", "write")
        finally:
            meta.close()
        return {"Authorization": f"Bearer {token}"}
    return {}


def cases_for(operation: APIOperation, real_ids: dict[str, int | str]) -> st.SearchStrategy:
    """Valid and invalid requests; with and without the ids of things that exist."""
    names = {p.name for p in operation.path_parameters}
    pinned = {name: value for name, value in real_ids.items() if name in names}
    strategies = [operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    if pinned:
        strategies += [
            operation.as_strategy(mode, path_parameters=pinned)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    return st.one_of(strategies)


def test_served_document_is_the_one_the_operations_come_from(target: Target) -> None:
    served = httpx.get(target.server.url + "/api/openapi.json").json()
    assert served == json.loads(json.dumps(openapi_document()))
    loaded = {(op.method.upper(), op.path) for op in (r.ok() for r in target.schema.get_all_operations())}
    assert loaded == set(OPERATIONS) and len(OPERATIONS) >= 12


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_operation_answers_a_server_error(target: Target, method: str, path: str, caller: str) -> None:
    operation = target.schema[path][method]
    headers = caller_headers(target, caller)
    answered: list[int] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,  # no .hypothesis/ directory in the working tree
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=cases_for(operation, target.real_ids))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=target.server.url, headers=headers, timeout=30)
        answered.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    run()
    assert answered, "schemathesis generated no request"
