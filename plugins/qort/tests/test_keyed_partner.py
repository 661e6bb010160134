"""A CRM's double submit of createBusinessPartner with one idempotencyKey sends QORT one
ImportRecords and answers the second with a replay of the first (not QORT's duplicate
CONFLICT); one meeting the first in flight is IDEMPOTENCY_CONFLICT; the key with another
request is IDEMPOTENCY_CONFLICT; and an import whose answer was lost after QORT stored
the firm is OUTCOME_UNKNOWN, its same-key retry reading the firm back from QORT instead
of importing it again.  Counted on the sandbox's own calls; GraphQL over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from brokergraph_qort.sandbox import QortSandbox

from gateway.testing import TestGateway

CREATE = """
mutation($input: CreateBusinessPartnerInput!) { createBusinessPartner(input: $input) {
  businessPartner { code name email broker } replayed errors { code message field }
} }"""
READ = """query($code: String!) { businessPartner(code: $code) { code name } }"""
IMPORT = "ImportRecords"


def _input(code: str, key: str, **more: Any) -> dict[str, Any]:
    fields = {
        "code": code,
        "name": "Retry Client",
        "email": "retry@example.com",
        "broker": "demo-broker",
        "idempotencyKey": key,
    }
    return {"input": {**fields, **more}}


async def _create(gateway: TestGateway, variables: dict[str, Any]) -> dict[str, Any]:
    body = await gateway.query(CREATE, variables)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["createBusinessPartner"]
    return payload


def _code() -> str:
    return f"RT{uuid.uuid4().hex[:8].upper()}"


async def test_a_double_submit_with_one_key_creates_one_partner(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    code, key = _code(), str(uuid.uuid4())
    imports = module_sandbox.calls[IMPORT]
    first = await _create(qort_gateway, _input(code, key))
    assert first["errors"] == [] and first["replayed"] is False
    second = await _create(qort_gateway, _input(code, key))
    assert second["errors"] == [] and second["replayed"] is True
    assert second["businessPartner"] == first["businessPartner"]
    assert module_sandbox.calls[IMPORT] == imports + 1
    other = await _create(qort_gateway, _input(code, key, name="Someone Else"))
    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert module_sandbox.calls[IMPORT] == imports + 1


async def test_a_concurrent_double_submit_creates_one_partner(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    code, key = _code(), str(uuid.uuid4())
    imports = module_sandbox.calls[IMPORT]
    module_sandbox.latency_seconds = 0.05
    try:
        answers = await asyncio.gather(*(_create(qort_gateway, _input(code, key)) for _ in "ab"))
    finally:
        module_sandbox.latency_seconds = 0.0
    assert module_sandbox.calls[IMPORT] == imports + 1
    made = [a for a in answers if a["errors"] == [] and not a["replayed"]]
    assert len(made) == 1
    (other,) = [a for a in answers if a is not made[0]]
    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_CONFLICT"] or (
        other["replayed"] and other["businessPartner"] == made[0]["businessPartner"]
    )


async def test_a_lost_answer_retried_with_its_key_reads_the_partner_back(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    await qort_gateway.query(READ, {"code": "DEMO-001"})  # a session open: the import is next
    code, key = _code(), str(uuid.uuid4())
    imports = module_sandbox.calls[IMPORT]
    module_sandbox.drop_next(1, after_apply=True)
    lost = await _create(qort_gateway, _input(code, key))
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
    assert module_sandbox.calls[IMPORT] == imports + 1
    module_sandbox.store.firm_packet(code)  # QORT has it (NOT_FOUND otherwise)

    settled = await _create(qort_gateway, _input(code, key))
    assert settled["errors"] == [] and settled["replayed"] is True
    assert settled["businessPartner"]["code"] == code
    assert settled["businessPartner"]["name"] == "Retry Client"
    assert module_sandbox.calls[IMPORT] == imports + 1  # read back, never imported again
    read = await qort_gateway.query(READ, {"code": code})
    assert read["data"]["businessPartner"] == {"code": code, "name": "Retry Client"}


async def test_a_lost_answer_that_left_the_sub_account_out_is_not_called_done(
    qort_gateway: TestGateway, module_sandbox: QortSandbox
) -> None:
    """The firm's import answered lost after QORT stored it, so its sub-account was
    never sent: the retry finds the firm without it and keeps the outcome open (saying
    so), neither replaying a partner without its sub-account nor importing again."""
    await qort_gateway.query(READ, {"code": "DEMO-001"})
    code, key = _code(), str(uuid.uuid4())
    variables = _input(code, key, subAccountCode=f"{code}-S")
    imports = module_sandbox.calls[IMPORT]
    module_sandbox.drop_next(1, after_apply=True)
    lost = await _create(qort_gateway, variables)
    assert [e["code"] for e in lost["errors"]] == ["OUTCOME_UNKNOWN"]
    retry = await _create(qort_gateway, variables)
    (error,) = retry["errors"]
    assert error["code"] == "OUTCOME_UNKNOWN"
    assert f"without its sub-account {code}-S" in error["message"]
    assert module_sandbox.calls[IMPORT] == imports + 1
