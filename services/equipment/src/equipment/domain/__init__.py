"""The equipment domain: pure state, `evolve` and decide functions for every equipment rule.

Why this exists: the rules of the catalogue, of items, bundles and transfers, and of a unit's
inventory as a whole live here with no I/O and no clock (time arrives as `today`/`now`), so every
rule is a unit test *given events → when command → then events or error* (STYLE.md §4).

Usage::

    from equipment import domain
    item = domain.replay_item((r.event(), r.version) for r in history)
    events = domain.move(item, command, unit=unit, parts=[], inventory=inventory, today=day)
    for stream_id, batch in domain.by_stream(events): ...      # where each event is appended

Modules: `item` (registration, corrections, status, moves, withdrawal), `bundle`, `transfer`,
`inventory` (a unit's inventory as a whole, serial claims, date rules), `product`, `errors`.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from equipment.domain.bundle import bundle, unbundle
from equipment.domain.errors import (
    ActBeforeCertificationError,
    ActBeforeItemHistoryError,
    ActDatedInFutureError,
    BundleRuleError,
    CategoryNotFoundError,
    EquipmentDomainError,
    InvalidItemDataError,
    ItemAlreadyRegisteredError,
    ItemInTransitError,
    ItemLostError,
    ItemNotFoundError,
    ItemNotInTransitError,
    ItemWithdrawnError,
    LocationNotFoundError,
    PartInBundleError,
    ProductAlreadyProposedError,
    ProductMergedError,
    ProductNotApprovedError,
    ProductNotFoundError,
    ProductStateError,
    SerialNumberRequiredError,
    SerialNumberTakenError,
    StatusChangeError,
    TransferToSameUnitError,
    UnitNotActiveError,
    UnitNotFoundError,
)
from equipment.domain.inventory import (
    INVENTORY_PREFIX,
    SERIAL_PREFIX,
    KnownUnit,
    PendingTransfer,
    SerialClaim,
    UnitInventory,
    asset_number,
    check_act_date,
    claim_serial,
    evolve_claim,
    evolve_inventory,
    inventory_stream,
    release_serial,
    replay_inventory,
    require_active,
    require_location,
    serial_stream,
)
from equipment.domain.item import (
    CLEARABLE_FIELDS,
    Item,
    Withdrawal,
    change_status,
    check_item_dates,
    correct,
    evolve_item,
    item_stream,
    move,
    normalise_serial,
    register,
    registration_matches,
    replay_item,
    require_item,
    require_present,
    serial_key_after,
    usable_product,
    withdraw,
)
from equipment.domain.product import (
    PRODUCT_PREFIX,
    Product,
    ProductStatus,
    approve_product,
    evolve_product,
    manufacturer_key,
    merge_product,
    product_stream,
    propose_product,
    reject_product,
    replay_product,
)
from equipment.domain.transfer import accept, cancel, dispatch, reject
from shared.events.base import Event
from shared.events.equipment import (
    InventoryEvent,
    ItemEvent,
    ProductEvent,
    SerialClaimEvent,
)


def stream_of(event: Event) -> str:
    """Return the id of the stream `event` belongs to."""
    if isinstance(event, ItemEvent):
        return item_stream(event.item_id)
    if isinstance(event, InventoryEvent):
        return inventory_stream(event.unit_id)
    if isinstance(event, ProductEvent):
        return product_stream(event.product_id)
    if isinstance(event, SerialClaimEvent):
        return serial_stream(event.manufacturer_key, event.serial_number)
    raise TypeError(f"{event.type} is not an equipment event")


def by_stream(events: Iterable[Event]) -> list[tuple[str, list[Event]]]:
    """Group decided events by stream, keeping each stream's first appearance and their order."""
    order: dict[str, list[Event]] = {}
    for stream_id, group in groupby(events, key=stream_of):
        order.setdefault(stream_id, []).extend(group)
    return list(order.items())


__all__ = [
    "CLEARABLE_FIELDS",
    "INVENTORY_PREFIX",
    "PRODUCT_PREFIX",
    "SERIAL_PREFIX",
    "ActBeforeCertificationError",
    "ActBeforeItemHistoryError",
    "ActDatedInFutureError",
    "BundleRuleError",
    "CategoryNotFoundError",
    "EquipmentDomainError",
    "InvalidItemDataError",
    "Item",
    "ItemAlreadyRegisteredError",
    "ItemInTransitError",
    "ItemLostError",
    "ItemNotFoundError",
    "ItemNotInTransitError",
    "ItemWithdrawnError",
    "KnownUnit",
    "LocationNotFoundError",
    "PartInBundleError",
    "PendingTransfer",
    "Product",
    "ProductAlreadyProposedError",
    "ProductMergedError",
    "ProductNotApprovedError",
    "ProductNotFoundError",
    "ProductStateError",
    "ProductStatus",
    "SerialClaim",
    "SerialNumberRequiredError",
    "SerialNumberTakenError",
    "StatusChangeError",
    "TransferToSameUnitError",
    "UnitInventory",
    "UnitNotActiveError",
    "UnitNotFoundError",
    "Withdrawal",
    "accept",
    "approve_product",
    "asset_number",
    "bundle",
    "by_stream",
    "cancel",
    "change_status",
    "check_act_date",
    "check_item_dates",
    "claim_serial",
    "correct",
    "dispatch",
    "evolve_claim",
    "evolve_inventory",
    "evolve_item",
    "evolve_product",
    "inventory_stream",
    "item_stream",
    "manufacturer_key",
    "merge_product",
    "move",
    "normalise_serial",
    "product_stream",
    "propose_product",
    "register",
    "registration_matches",
    "reject",
    "reject_product",
    "release_serial",
    "replay_inventory",
    "replay_item",
    "replay_product",
    "require_active",
    "require_item",
    "require_location",
    "require_present",
    "serial_key_after",
    "serial_stream",
    "stream_of",
    "unbundle",
    "usable_product",
    "withdraw",
]
