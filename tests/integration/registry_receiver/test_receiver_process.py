"""The reference receiver as a real process: the contract's outcomes, each fault mode as a client
sees it, kill -9 and restart, and tampering, all observed through HTTP only."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.receiver import Receiver
from tests.unit.registry_receiver.builders import key_header, push, row, spec_hash

# What a sender sees when the connection is dropped: a transport error, never a status.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def send(receiver: Receiver, payload: dict[str, Any], timeout_s: float = 10.0) -> httpx.Response:
    """PUT `payload` to its body's table on a fresh connection."""
    return httpx.put(
        f"{receiver.url}/v1/bodies/{payload['body_code']}/table",
        json=payload,
        headers=key_header(payload),
        timeout=timeout_s,
    )


def outcome(response: httpx.Response) -> tuple[str, int]:
    assert response.status_code == 200, response.text
    body = response.json()
    return body["outcome"], body["held_version"]


def test_applied_then_duplicate_then_stale(receiver: Receiver) -> None:
    assert outcome(send(receiver, push(version=2))) == ("applied", 2)
    assert outcome(send(receiver, push(version=2))) == ("duplicate_key", 2)
    assert outcome(send(receiver, push(version=1, rows=[]))) == ("stale_version", 2)
    held = receiver.body("0551010")
    assert held is not None
    assert (held["registry_version"], held["content_hash"]) == (2, spec_hash([row()]))
    stats = receiver.stats()
    assert stats == {"pushes_received": 3, "pushes_applied": 1, "applied_per_key": {"0551010:2": 1}}
    # registry-sync's outage test parses these lines (README: stable).
    log = receiver.log_path.read_text("utf-8")
    assert "push body=0551010 version=2 outcome=applied held=2" in log
    assert "push body=0551010 version=1 outcome=stale_version held=2" in log


def test_invalid_push_is_422_naming_the_field(receiver: Receiver) -> None:
    response = send(receiver, push(rows=[row(quantity=0)]))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["rows.0.quantity"]
    assert receiver.body("0551010") is None


def test_hash_mismatch_is_422_naming_content_hash(receiver: Receiver) -> None:
    response = send(receiver, push(content_hash=spec_hash([])))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["content_hash"]
    assert receiver.stats()["pushes_applied"] == 0


def test_slow_answers_after_the_delay_and_applies(receiver: Receiver) -> None:
    receiver.set_faults("slow", delay_ms=600)
    started = time.monotonic()
    assert outcome(send(receiver, push()))[0] == "applied"
    assert time.monotonic() - started >= 0.6
    with pytest.raises(httpx.ReadTimeout):
        send(receiver, push(version=2), timeout_s=0.2)  # a sender's timeout: unknown outcome


def test_fail_answers_the_status_and_applies_nothing(receiver: Receiver) -> None:
    receiver.set_faults("fail", status=500)
    response = send(receiver, push())
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert receiver.stats()["pushes_applied"] == 0
    receiver.set_faults("ok")
    assert outcome(send(receiver, push())) == ("applied", 1)


def test_drop_before_closes_without_answer_or_effect(receiver: Receiver) -> None:
    receiver.set_faults("drop_before")
    with pytest.raises(DROPPED):
        send(receiver, push())
    stats = receiver.stats()
    assert (stats["pushes_received"], stats["pushes_applied"]) == (1, 0)
    assert "fault drop_before on PUT /v1/bodies/0551010/table" in receiver.log_path.read_text(
        "utf-8"
    )
    receiver.set_faults("ok")
    assert outcome(send(receiver, push())) == ("applied", 1)


def test_drop_after_applies_but_the_acknowledgement_is_lost(receiver: Receiver) -> None:
    receiver.set_faults("drop_after")
    with pytest.raises(DROPPED):
        send(receiver, push(version=4))
    assert receiver.stats()["applied_per_key"] == {"0551010:4": 1}
    receiver.set_faults("ok")
    assert outcome(send(receiver, push(version=4))) == ("duplicate_key", 4)  # the sender's retry
    assert receiver.stats()["applied_per_key"] == {"0551010:4": 1}


def test_down_refuses_connections_then_recovers(receiver: Receiver) -> None:
    send(receiver, push(version=1))
    receiver.set_faults("down")
    with pytest.raises(httpx.ConnectError):
        send(receiver, push(version=2))
    assert httpx.get(f"{receiver.admin_url}/_admin/healthz").json()["data_port"] == "closed"
    receiver.set_faults("ok")
    assert outcome(send(receiver, push(version=2))) == ("applied", 2)
    assert receiver.stats()["pushes_received"] == 2  # the refused one never arrived


def test_down_closes_kept_alive_connections_too(receiver: Receiver) -> None:
    with httpx.Client(base_url=receiver.url, timeout=5) as client:
        assert client.get("/v1/bodies").status_code == 200
        receiver.set_faults("down")
        with pytest.raises(httpx.TransportError):
            client.get("/v1/bodies")
        receiver.set_faults("ok")
        assert client.get("/v1/bodies").status_code == 200


def test_probability_faults_only_a_fraction(receiver: Receiver) -> None:
    receiver.set_faults("fail", status=503, probability=0.5)
    with httpx.Client(base_url=receiver.url, timeout=5) as client:
        statuses = [client.get("/v1/bodies").status_code for _ in range(60)]
    assert set(statuses) == {200, 503}  # all-alike odds: 2 in 2**60


def test_kill_and_restart_keep_what_was_acknowledged(receiver: Receiver) -> None:
    assert outcome(send(receiver, push(version=3)))[0] == "applied"
    receiver.set_faults("fail")
    receiver.kill()
    with pytest.raises(httpx.ConnectError):
        send(receiver, push(version=4))
    receiver.restart()
    assert receiver.faults()["mode"] == "ok"  # fault modes live in memory
    assert outcome(send(receiver, push(version=3))) == ("duplicate_key", 3)
    held = receiver.body("0551010")
    assert held is not None
    assert held["registry_version"] == 3
    assert receiver.stats()["applied_per_key"] == {"0551010:3": 1}


def test_tampering_changes_the_listing_hash_not_the_version(receiver: Receiver) -> None:
    send(receiver, push(version=5))
    [before] = receiver.listing()
    assert before == {
        "body_code": "0551010",
        "registry_version": 5,
        "content_hash": spec_hash([row()]),
    }
    receiver.tamper("0551010", [row(quantity=1)])
    [after] = receiver.listing()
    assert after["registry_version"] == 5
    assert after["content_hash"] == spec_hash([row(quantity=1)])
    held = receiver.body("0551010")
    assert held is not None
    assert held["content_hash"] == before["content_hash"]  # the stored hash field is kept


def test_listing_pages_through_every_body(receiver: Receiver) -> None:
    codes = [f"05510{n:02d}" for n in range(7)]
    for code in reversed(codes):
        send(receiver, push(code))
    assert [item["body_code"] for item in receiver.listing(page_size=3)] == codes


def test_reset_forgets_everything(receiver: Receiver) -> None:
    send(receiver, push())
    receiver.set_faults("down")
    receiver.reset()
    assert receiver.stats() == {"pushes_received": 0, "pushes_applied": 0, "applied_per_key": {}}
    assert receiver.listing() == []  # and the data port is open again
