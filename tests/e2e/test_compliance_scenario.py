"""Issue 6's compliance scenario through the real services, as processes, on a clock the test sets.

Units, equipment and compliance run as their console scripts (API and worker each), connected only
by HTTP, Kafka and their own databases. All six read the time from one file (`ICTC_CLOCK_FILE`,
`shared.clock.FileClock`) that the test rewrites to walk through the December 2026 window: units
of two directorates are registered through the units API, items through the equipment API; changes
are recorded before and inside the window; units certify before and after the deadline; a transfer
is still pending at the deadline (the unit's certification is refused, so it misses the window);
a unit is merged into another through the units API (the absorbing unit carries its initial
inventory). The public reports are then read in the middle of the window and after its deadline:
each lists exactly the expected units, states and certification dates, in JSON, CSV and HTML.

Notes: time stands still on each instant the test writes, so requests retried while a read model
catches up happen at the same instant and the dates shown are exact. Waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from uuid import UUID, uuid4

import httpx
import pytest

from shared.clock import ATHENS, CLOCK_FILE_ENV, write_clock_file
from shared.devissuer import DevIssuer, load_or_create
from shared.events.units import GlobalRole
from tests.conftest import DatabaseFactory, TopicFactory
from tests.e2e.test_units_api_process import free_port

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = (
    "units-worker", "units-api", "equipment-worker", "equipment-api",
    "compliance-worker", "compliance-api",
)  # fmt: skip
WINDOW = "window-2026-12"
START_S = 240.0  # six Python processes starting on a busy two-core machine
CATCH_UP_S = 120.0  # a read model following Kafka on the same machine
T = TypeVar("T")

ROOT_UNIT, R_ATTICA, R_CRETE = "0000000", "9900001", "9900002"
D_ATHENS, D_HERAKLION = "9910001", "9910002"
ADMINISTRATIVE = (
    (ROOT_UNIT, None, "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ", "ΥΠΟΥΡΓΕΙΟ ΠΑΙΔΕΙΑΣ"),
    (R_ATTICA, ROOT_UNIT, "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΑΤΤΙΚΗΣ", "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΕΚΠΑΙΔΕΥΣΗΣ"),
    (R_CRETE, ROOT_UNIT, "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΚΡΗΤΗΣ", "ΠΕΡΙΦΕΡΕΙΑΚΗ ΔΙΕΥΘΥΝΣΗ ΕΚΠΑΙΔΕΥΣΗΣ"),
    (D_ATHENS, R_ATTICA, "ΔΙΕΥΘΥΝΣΗ Δ.Ε. Α΄ ΑΘΗΝΑΣ", "ΔΙΕΥΘΥΝΣΗ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ"),
    (D_HERAKLION, R_CRETE, "ΔΙΕΥΘΥΝΣΗ Δ.Ε. ΗΡΑΚΛΕΙΟΥ", "ΔΙΕΥΘΥΝΣΗ ΔΕΥΤΕΡΟΒΑΘΜΙΑΣ ΕΚΠΑΙΔΕΥΣΗΣ"),
)
ON_TIME, LATE, PENDING, IDLE, MERGED, ABSORBING = (
    "0551001", "0551002", "0551003", "0551004", "0551005", "0551006",
)  # fmt: skip
CRETE_ON_TIME, CRETE_BUSY = "0552001", "0552002"
SCHOOLS = {  # unit id → (directorate, name, type)
    ON_TIME: (D_ATHENS, "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    LATE: (D_ATHENS, "2ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ", "ΓΕΝΙΚΟ ΛΥΚΕΙΟ"),
    PENDING: (D_ATHENS, "1ο ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ", "ΕΠΑΓΓΕΛΜΑΤΙΚΟ ΛΥΚΕΙΟ"),
    IDLE: (D_ATHENS, "3ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    MERGED: (D_ATHENS, "4ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    ABSORBING: (D_ATHENS, "5ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ", "ΓΥΜΝΑΣΙΟ"),
    CRETE_ON_TIME: (D_HERAKLION, "Γυμνάσιο Ηρακλείου", "ΓΥΜΝΑΣΙΟ"),
    CRETE_BUSY: (D_HERAKLION, "Γενικό Λύκειο Μοιρών", "ΓΕΝΙΚΟ ΛΥΚΕΙΟ"),
}


def at(*parts: int) -> datetime:
    """Return an Athens wall-clock instant."""
    return datetime(*parts, tzinfo=ATHENS)  # type: ignore[arg-type,misc]  # year, month, day, …


SET_UP = at(2026, 6, 1, 9)
MID_WINDOW = at(2026, 12, 22, 12)
AFTER_DEADLINE = at(2027, 1, 10, 12)


def head(unit_id: str) -> str:
    """Return the user id of a school's head (entry, manage and certify there)."""
    return f"head-{unit_id}"


# --- running the services ------------------------------------------------------------------------


@dataclass
class System:
    """The six processes, a client per API, the token issuer and the clock file they all read."""

    units: httpx.AsyncClient
    equipment: httpx.AsyncClient
    compliance: httpx.AsyncClient
    issuer: DevIssuer
    clock_file: Path
    processes: list[subprocess.Popen[bytes]]
    now: datetime = SET_UP
    product_id: str = ""

    def set_time(self, instant: datetime) -> None:
        """Move every process's clock to `instant`."""
        write_clock_file(self.clock_file, instant)
        self.now = instant

    def auth(self, user_id: str, *roles: GlobalRole) -> dict[str, str]:
        """Return an Authorization header valid at the system's current instant."""
        return {"Authorization": "Bearer " + self.issuer.mint(user_id, now=self.now, roles=roles)}

    def admin(self) -> dict[str, str]:
        """Return a ministry administrator's Authorization header."""
        return self.auth("ministry-admin", GlobalRole.MINISTRY_ADMIN)

    async def eventually(
        self, check: Callable[[], Awaitable[T | None]], timeout_s: float = CATCH_UP_S
    ) -> T:
        """Poll `check` until it returns a value; fail if a process dies or time runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            running = zip(PROCESSES, self.processes, strict=True)
            died = {name: p.returncode for name, p in running if p.poll() is not None}
            assert not died, f"processes died (exit codes): {died}"
            with contextlib.suppress(httpx.TransportError):
                found = await check()
                if found is not None:
                    return found
            assert loop.time() < deadline, "condition not met in time"
            await asyncio.sleep(0.25)


def start(name: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start one of the services' console scripts (a long-lived child, polled without blocking)."""
    return subprocess.Popen([str(ROOT / ".venv" / "bin" / name)], env=env, cwd=ROOT)


@contextlib.asynccontextmanager
async def running_system(
    fresh_database: DatabaseFactory, kafka_bootstrap: str, unique_topic: TopicFactory, tmp: Path
) -> AsyncIterator[System]:
    """Start the six processes on fresh databases and topics; stop and reap them at the end."""
    issuer = load_or_create(tmp / "issuer")
    clock_file = tmp / "clock"
    write_clock_file(clock_file, SET_UP)
    topics = {
        "UNITS_TOPIC": await unique_topic("units-events", partitions=6),
        "EQUIPMENT_TOPIC": await unique_topic("equipment-events", partitions=6),
        "COMPLIANCE_TOPIC": await unique_topic("compliance-events", partitions=6),
    }
    ports = {"UNITS": free_port(), "EQUIPMENT": free_port(), "COMPLIANCE": free_port()}
    env = dict(os.environ) | {CLOCK_FILE_ENV: str(clock_file), "OTEL_SDK_DISABLED": "true"}
    for prefix, port in ports.items():
        env |= {
            f"{prefix}_DATABASE_URL": fresh_database(f"scenario_{prefix.lower()}"),
            f"{prefix}_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            f"{prefix}_PORT": str(port),
            f"{prefix}_AUTH_ISSUER": issuer.issuer,
            f"{prefix}_AUTH_AUDIENCE": issuer.audience,
            f"{prefix}_AUTH_JWKS_FILE": str(tmp / "issuer" / "jwks.json"),
        }
        env |= {f"{prefix}_{name}": topic for name, topic in topics.items()}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.extend(start(name, env) for name in PROCESSES)  # each kept as soon as started
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['UNITS']}", timeout=60) as units,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ports['EQUIPMENT']}", timeout=60
            ) as equipment,
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{ports['COMPLIANCE']}", timeout=60
            ) as compliance,
        ):
            system = System(units, equipment, compliance, issuer, clock_file, processes)

            async def ready() -> bool | None:
                answers = [
                    await units.get("/readyz"),
                    await equipment.get("/readyz"),
                    await compliance.get("/readyz"),
                    await units.get("/units", headers=system.admin()),  # migrated, projected
                    await compliance.get("/reports/completed.json"),
                ]
                return True if all(a.status_code == 200 for a in answers) else None

            await system.eventually(ready, timeout_s=START_S)
            yield system
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.to_thread(process.wait, 30)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait, 30)


# --- acts through the APIs -----------------------------------------------------------------------


def created(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    """Return the JSON of a successful write, failing with its problem otherwise."""
    assert answer.status_code in (statuses or (200, 201)), answer.text
    body: dict[str, Any] = answer.json()
    return body


async def build_tree(system: System) -> None:
    """Register the ministry, two regions, two directorates and the schools; grant the heads."""
    for unit_id, parent_id, name, unit_type in ADMINISTRATIVE:
        created(
            await system.units.post(
                "/units", headers=system.admin(),
                json={"unit_id": unit_id, "parent_id": parent_id, "name": name,
                      "unit_type": unit_type},
            )
        )  # fmt: skip
    for unit_id, (parent_id, name, unit_type) in SCHOOLS.items():
        created(
            await system.units.post(
                "/units", headers=system.admin(),
                json={"unit_id": unit_id, "parent_id": parent_id, "name": name,
                      "unit_type": unit_type, "email": f"mail@{unit_id}.sch.gr"},
            )
        )  # fmt: skip
        # One stream per user (grants:<user>), kept in order through Kafka: `entry` comes last,
        # so a head whose first registration is accepted holds the other roles there too.
        for role in ("certify", "manage", "entry"):
            created(
                await system.units.post(
                    "/grants", headers=system.admin(),
                    json={"user_id": head(unit_id), "unit_id": unit_id, "role": role},
                )
            )  # fmt: skip
    product = created(
        await system.equipment.post(
            "/products", headers=system.admin(),
            json={"category_id": "laptop", "manufacturer": "Lenovo", "model": "ThinkPad L14"},
        )
    )  # fmt: skip
    system.product_id = product["stream_id"].removeprefix("product:")

    async def schools_known() -> bool | None:
        for unit_id in SCHOOLS:
            answer = await system.equipment.get(
                f"/units/{unit_id}/locations", headers=system.admin()
            )
            if answer.status_code != 200 or len(answer.json()) < 2:
                return None
        return True

    await system.eventually(schools_known)


async def register_item(system: System, unit_id: str, location: int = 1) -> UUID:
    """Register a laptop in the school as its head (retried while the grant reaches equipment)."""
    item_id = uuid4()

    async def registered() -> bool | None:
        answer = await system.equipment.post(
            "/items", headers=system.auth(head(unit_id)),
            json={"item_id": str(item_id), "unit_id": unit_id, "product_id": system.product_id,
                  "location_id": f"{unit_id}-L{location}",
                  "serial_number": f"PF-{item_id.hex[:10]}"},
        )  # fmt: skip
        assert answer.status_code in (201, 403), answer.text  # 403: the grant is on its way
        return True if answer.status_code == 201 else None

    await system.eventually(registered)
    return item_id


async def certify(system: System, unit_id: str) -> httpx.Response:
    """Ask to certify the school's inventory as its head (ΑΠΟΓΡΑΦΗ)."""
    return await system.equipment.post(
        f"/units/{unit_id}/certifications", headers=system.auth(head(unit_id)), json={}
    )


async def walk_to_mid_window(system: System) -> None:
    """Act from June to 22 December 2026 through the units and equipment APIs."""
    # June: the school that will be merged completes its initial inventory.
    system.set_time(at(2026, 6, 10, 10))
    await register_item(system, MERGED)
    await register_item(system, MERGED)
    system.set_time(at(2026, 6, 10, 10, 30))
    assert created(await certify(system, MERGED), 201)["item_count"] == 2
    # November, before the window: changes that do not count for December.
    system.set_time(at(2026, 11, 20, 10))
    await register_item(system, IDLE)
    moved = await register_item(system, LATE)
    # December, inside the window.
    system.set_time(at(2026, 12, 2, 9))
    await register_item(system, ON_TIME)
    await register_item(system, ON_TIME, location=2)
    await register_item(system, CRETE_ON_TIME)
    system.set_time(at(2026, 12, 3, 9))
    created(
        await system.equipment.post(
            f"/items/{moved}/moves", headers=system.auth(head(LATE)),
            json={"to_location_id": f"{LATE}-L2"},
        )
    )  # fmt: skip
    system.set_time(at(2026, 12, 5, 10))
    await register_item(system, CRETE_BUSY)
    system.set_time(at(2026, 12, 10, 11))
    certified = created(await certify(system, ON_TIME), 201)
    assert certified["certified_at"].startswith("2026-12-10T09:00:00")  # UTC
    system.set_time(at(2026, 12, 15, 10))
    created(
        await system.units.post(
            f"/units/{MERGED}/merge", headers=system.admin(),
            json={"into_unit_id": ABSORBING, "decision_reference": "Φ.1/123/Δ1"},
        )
    )  # fmt: skip
    system.set_time(at(2026, 12, 16, 9))
    sent = await register_item(system, PENDING)
    system.set_time(at(2026, 12, 18, 12))
    created(await certify(system, CRETE_ON_TIME), 201)
    system.set_time(at(2026, 12, 20, 9))
    created(
        await system.equipment.post(
            f"/items/{sent}/transfer", headers=system.auth(head(PENDING)),
            json={"to_unit_id": CRETE_BUSY, "reason": "ενίσχυση εργαστηρίου"},
        )
    )  # fmt: skip
    system.set_time(MID_WINDOW)


async def walk_past_the_deadline(system: System) -> None:
    """Act from 28 December 2026 to 10 January 2027: a refusal, a late certification."""
    system.set_time(at(2026, 12, 28, 10))
    refused = await certify(system, PENDING)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/certification-refused")
    assert [r["reason"] for r in problem["reasons"]] == ["transfer-pending"]
    assert problem["reasons"][0]["to_unit_id"] == CRETE_BUSY
    # The destination may not certify either while the item is on its way.
    assert (await certify(system, CRETE_BUSY)).status_code == 409
    system.set_time(at(2027, 1, 5, 9))
    created(await certify(system, LATE), 201)
    system.set_time(AFTER_DEADLINE)


# --- reading the reports -------------------------------------------------------------------------


class Expected(NamedTuple):
    """What a report shows of one unit."""

    state: str
    certified_at: datetime | None = None
    has_initial_inventory: bool = False
    pending_transfers: int = 0
    absorbed: tuple[str, ...] = ()


STATE_LABELS = {
    "not_started": "Δεν ξεκίνησε",
    "in_progress": "Σε εξέλιξη",
    "certified": "Ολοκληρώθηκε",
    "late": "Ολοκληρώθηκε εκπρόθεσμα",
    "missed": "Δεν ολοκληρώθηκε εγκαίρως",
}
ON_TIME_AT, CRETE_AT, LATE_AT = at(2026, 12, 10, 11), at(2026, 12, 18, 12), at(2027, 1, 5, 9)
WHEN_MID_WINDOW = {
    "completed": {
        ON_TIME: Expected("certified", ON_TIME_AT, has_initial_inventory=True),
        CRETE_ON_TIME: Expected("certified", CRETE_AT, has_initial_inventory=True),
    },
    "not-completed": {
        LATE: Expected("in_progress"),
        PENDING: Expected("in_progress", pending_transfers=1),
        IDLE: Expected("not_started"),
        ABSORBING: Expected("not_started", has_initial_inventory=True, absorbed=(MERGED,)),
        CRETE_BUSY: Expected("in_progress", pending_transfers=1),
    },
}
WHEN_OVER = {
    "completed": {
        ON_TIME: Expected("certified", ON_TIME_AT, has_initial_inventory=True),
        LATE: Expected("late", LATE_AT, has_initial_inventory=True),
        CRETE_ON_TIME: Expected("certified", CRETE_AT, has_initial_inventory=True),
    },
    "not-completed": {
        PENDING: Expected("missed", pending_transfers=1),
        IDLE: Expected("missed"),
        ABSORBING: Expected("missed", has_initial_inventory=True, absorbed=(MERGED,)),
        CRETE_BUSY: Expected("missed", pending_transfers=1),
    },
}


def shown_time(instant: datetime | None) -> str:
    """Return an instant as the CSV and HTML reports print it (Athens, to the minute)."""
    return "" if instant is None else instant.astimezone(ATHENS).strftime("%d/%m/%Y %H:%M")


def as_json(expected: Mapping[str, Expected]) -> dict[str, tuple[Any, ...]]:
    return {
        code: (
            e.state,
            None if e.certified_at is None else e.certified_at.isoformat(timespec="seconds"),
            e.has_initial_inventory,
            e.pending_transfers,
            list(e.absorbed),
            SCHOOLS[code][0],
        )
        for code, e in expected.items()
    }


def from_json(document: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        u["unit_id"]: (
            u["state"], u["certified_at"], u["has_initial_inventory"], u["pending_transfers"],
            u["absorbed_unit_ids"], u["directorate_id"],
        )
        for u in document["units"]
    }  # fmt: skip


def as_csv(expected: Mapping[str, Expected]) -> dict[str, tuple[str, ...]]:
    return {
        code: (
            SCHOOLS[code][1],
            STATE_LABELS[e.state],
            shown_time(e.certified_at),
            "ΝΑΙ" if e.has_initial_inventory else "ΟΧΙ",
            str(e.pending_transfers),
        )
        for code, e in expected.items()
    }


def from_csv(content: bytes) -> dict[str, tuple[str, ...]]:
    assert content.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, for Excel
    header, *rows = csv.reader(io.StringIO(content.decode("utf-8-sig")))
    column = {name: header.index(name) for name in header}
    names = ("Ονομασία", "Κατάσταση", "Οριστικοποίηση", "Αρχική απογραφή", "Εκκρεμείς μεταφορές")
    return {row[column["Κωδικός"]]: tuple(row[column[n]] for n in names) for row in rows}


def as_html(expected: Mapping[str, Expected]) -> dict[str, tuple[str, ...]]:
    def name(code: str, e: Expected) -> str:
        return SCHOOLS[code][1] + "".join(f" (+{unit})" for unit in e.absorbed)

    def state(e: Expected) -> str:
        notes = ("" if e.has_initial_inventory else " (χωρίς αρχική απογραφή)") + (
            f" ({e.pending_transfers} εκκρ. μεταφορές)" if e.pending_transfers else ""
        )
        return STATE_LABELS[e.state] + notes

    return {
        code: (name(code, e), state(e), shown_time(e.certified_at)) for code, e in expected.items()
    }


class UnitRows(HTMLParser):
    """The rows of the page's `table.units`, as {column label: text}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self._in_units = False
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._in_units = attributes.get("class") == "units"
        elif self._in_units and tag == "tr":
            self.rows.append({})
        elif self._in_units and tag == "td" and self.rows:
            self._label = attributes.get("data-label") or ""
            self.rows[-1][self._label] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._label = None
        elif tag == "table":
            self._in_units = False

    def handle_data(self, data: str) -> None:
        if self._label is not None:
            self.rows[-1][self._label] += data


def from_html(page: str) -> dict[str, tuple[str, ...]]:
    parser = UnitRows()
    parser.feed(page)
    cells = ("Ονομασία", "Κατάσταση", "Οριστικοποίηση")
    return {
        row["Κωδικός"]: tuple(" ".join(row[c].split()) for c in cells)
        for row in parser.rows
        if row  # the header row has no cells
    }


@dataclass(frozen=True)
class Reading:
    """One report in the three formats, as the comparisons need them."""

    json: dict[str, Any]
    units_json: dict[str, tuple[Any, ...]]
    units_csv: dict[str, tuple[str, ...]]
    units_html: dict[str, tuple[str, ...]]

    def matches(self, expected: Mapping[str, Expected]) -> bool:
        return (self.units_json, self.units_csv, self.units_html) == (
            as_json(expected), as_csv(expected), as_html(expected),
        )  # fmt: skip


async def read_report(system: System, kind: str) -> Reading:
    """Read `/reports/<kind>` as JSON, CSV and HTML."""
    answers = [
        await system.compliance.get(f"/reports/{kind}.{fmt}") for fmt in ("json", "csv", "html")
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
    as_json_answer, as_csv_answer, as_html_answer = answers
    assert as_csv_answer.headers["content-type"].startswith("text/csv")
    assert as_html_answer.headers["content-type"].startswith("text/html")
    document: dict[str, Any] = as_json_answer.json()
    return Reading(
        document,
        from_json(document),
        from_csv(as_csv_answer.content),
        from_html(as_html_answer.text),
    )


async def reports_settle_on(
    system: System, expected: Mapping[str, Mapping[str, Expected]]
) -> dict[str, Reading]:
    """Wait (bounded) until both reports show `expected` in every format; return the readings."""
    last: dict[str, Reading] = {}

    async def settled() -> dict[str, Reading] | None:
        for kind in expected:
            last[kind] = await read_report(system, kind)
        return dict(last) if all(last[k].matches(e) for k, e in expected.items()) else None

    try:
        return await system.eventually(settled)
    except AssertionError:
        for kind, reading in last.items():  # show what differs, format by format
            assert reading.units_json == as_json(expected[kind]), kind
            assert reading.units_csv == as_csv(expected[kind]), kind
            assert reading.units_html == as_html(expected[kind]), kind
        raise


# --- the test ------------------------------------------------------------------------------------


@pytest.mark.timeout(900)  # bounded waits inside; this only backs them up on a very slow machine
async def test_the_reports_follow_a_december_window_through_the_real_services(
    fresh_database: DatabaseFactory,
    kafka_bootstrap: str,
    unique_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    async with running_system(fresh_database, kafka_bootstrap, unique_topic, tmp_path) as system:
        await build_tree(system)
        await walk_to_mid_window(system)

        during = await reports_settle_on(system, WHEN_MID_WINDOW)

        document = during["not-completed"].json
        assert document["campaign"]["campaign_id"] == WINDOW
        assert document["generated_at"] == MID_WINDOW.isoformat(timespec="seconds")
        assert document["totals"] == {
            "completed": 2, "not_completed": 5, "total": 7, "matching": 5,
        }  # fmt: skip

        await walk_past_the_deadline(system)

        over = await reports_settle_on(system, WHEN_OVER)

        document = over["completed"].json
        assert document["campaign"]["campaign_id"] == WINDOW
        assert document["generated_at"] == AFTER_DEADLINE.isoformat(timespec="seconds")
        assert document["totals"] == {
            "completed": 3, "not_completed": 4, "total": 7, "matching": 3,
        }  # fmt: skip
        by_directorate = {
            c["id"]: (c["completed"], c["not_completed"])
            for c in document["counts"]["directorates"]
        }
        assert by_directorate == {D_ATHENS: (2, 3), D_HERAKLION: (1, 1)}
        by_region = {c["id"]: c["total"] for c in document["counts"]["regions"]}
        assert by_region == {R_ATTICA: 5, R_CRETE: 2}
        # The merged school is in neither list; the one it merged into carries its inventory.
        listed = set(over["completed"].units_json) | set(over["not-completed"].units_json)
        assert MERGED not in listed
        assert listed == set(SCHOOLS) - {MERGED}
        # The filters of the public pages still narrow by directorate.
        heraklion = await system.compliance.get(
            "/reports/not-completed.json", params={"directorate": D_HERAKLION}
        )
        assert [u["unit_id"] for u in heraklion.json()["units"]] == [CRETE_BUSY]
