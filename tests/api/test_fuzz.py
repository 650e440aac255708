"""Schema-driven fuzzing of the running control API (schemathesis, bounded).

The schema is read from the server's own ``/api/v1/openapi.json``.  Valid and
invalid bodies are generated for every operation; the real key is put into
generated bodies (so they reach the validator and the engine rather than stop
at the key check), and valid ones are steered to a known strategy, symbol and
small trade ids so they create, change and exit real trades.  No reply may be a server error or break the published
schema, and the engine must still run and trade afterwards.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import API_KEY, call, ok
from tmtool.domain.models import TradeStatus

EXAMPLES_PER_OPERATION = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

pytestmark = pytest.mark.slow


def _steered(body: dict) -> dict:
    """Known names and small trade ids, so valid bodies reach real trades and strategies."""
    known = {"strategy": "api", "symbol": "SBIN", "exchange": "NSE"}
    steered = {name: value for name, value in known.items() if name in body}
    if isinstance(body.get("trade_id"), int):
        steered["trade_id"] = body["trade_id"] % 8 + 1
    return steered


def _fuzz_operation(operation, mode: GenerationMode, base_url: str, sent: list[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        if isinstance(case.body, dict):
            case.body["apikey"] = API_KEY  # optional in the schema (the Unix socket needs none); TCP needs it
            if mode is GenerationMode.POSITIVE:
                case.body.update(_steered(case.body))
        response = case.call(base_url=base_url, timeout=15)
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


def test_fuzzing_finds_no_server_error_and_the_engine_survives(api, stack):
    stack.sim.set_price("NSE", "SBIN", 800.0)
    with httpx.Client(base_url=api.url, timeout=10.0) as client:
        before = ok(call(client, "createtrade", strategy="api", symbol="SBIN", exchange="NSE", action="BUY", quantity=1))
    stack.wait_status(before["trade_id"], TradeStatus.ACTIVE)

    document = httpx.get(f"{api.url}/api/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    sent: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if operation.body:  # operations without a body have nothing to make invalid
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            _fuzz_operation(operation, mode, api.url, sent)

    print(f"fuzzed {len(sent)} requests; statuses {sorted(set(sent))}")
    assert len(sent) >= 200
    assert all(status < 500 for status in sent)
    assert stack.engine.running
    with httpx.Client(base_url=api.url, timeout=10.0) as client:
        assert ok(client.get("/api/v1/health"))["engine"] == "RUNNING"
        stack.sim.set_price("NSE", "INFY", 1500.0)
        after = ok(call(client, "createtrade", strategy="api", symbol="INFY", exchange="NSE", action="BUY", quantity=1, stop_loss=1495))
    stack.wait_status(after["trade_id"], TradeStatus.ACTIVE)
    stack.tick("INFY", 1494.0)
    assert stack.wait_status(after["trade_id"], TradeStatus.CLOSED).exit_reason.value == "STOP_LOSS"
