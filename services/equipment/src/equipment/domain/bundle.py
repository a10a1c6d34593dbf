"""Bundles: items made of other items (a workstation holds its CPU, RAM, disks and monitors).

Rules: only a bundle category takes parts, and only parts of the categories it lists, up to each
maximum; a part sits in one bundle at a time, in the bundle's unit and location; a bundle that is
itself a part takes no parts (which also rules out cycles). A bundle with fewer parts of a category
than its minimum is flagged (`Item.has_missing_parts`); that is a state, not a refusal, since a
school records what it has.
"""

from __future__ import annotations

from datetime import date

from equipment.commands import BundlePart, UnbundlePart
from equipment.domain.errors import BundleRuleError
from equipment.domain.inventory import UnitInventory
from equipment.domain.item import (
    Item,
    check_item_dates,
    require_item,
    require_present,
)
from shared.events.base import Event
from shared.events.equipment import (
    BundlePartAdded,
    BundlePartRemoved,
    ItemBundled,
    ItemMoved,
    ItemUnbundled,
)


def bundle(
    bundle_item: Item | None,
    part: Item | None,
    command: BundlePart,
    *,
    inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for putting `part` into `bundle_item` (it joins the bundle's location)."""
    bundle_item = require_item(bundle_item, command.item_id)
    part = require_item(part, command.part_item_id)

    def refuse(reason: str) -> BundleRuleError:
        return BundleRuleError(bundle_item.item_id, part.item_id, reason)

    if part.bundle_item_id == bundle_item.item_id:
        return []  # already in it: a retried request changes nothing
    if part.item_id == bundle_item.item_id:
        raise refuse("an item cannot be a part of itself")
    category = bundle_item.category
    if category is None or not category.is_bundle:
        raise refuse(f"a {bundle_item.category_id} is not a bundle and takes no parts")
    require_present(bundle_item, allow_part=True)
    if bundle_item.bundle_item_id is not None:
        raise refuse("a bundle inside another bundle takes no parts; take it out first")
    require_present(part, allow_part=True)
    if part.bundle_item_id is not None:
        raise refuse(f"the part is already in bundle {part.bundle_item_id}")
    if part.unit_id != bundle_item.unit_id:
        raise refuse(f"the part is in unit {part.unit_id}, the bundle in {bundle_item.unit_id}")
    rule = category.part_rule(part.category_id)
    if rule is None:
        raise refuse(f"a {category.category_id} takes no {part.category_id}")
    held = sum(1 for c in bundle_item.parts.values() if c == part.category_id)
    if held >= rule.maximum:
        raise refuse(f"a {category.category_id} holds at most {rule.maximum} {part.category_id}")
    check_item_dates(
        command.performed_on, [bundle_item, part], today=today, inventories=[inventory]
    )
    events: list[Event] = [
        BundlePartAdded(
            item_id=bundle_item.item_id,
            unit_id=bundle_item.unit_id,
            part_item_id=part.item_id,
            part_category_id=part.category_id,
            performed_on=command.performed_on,
        ),
        ItemBundled(
            item_id=part.item_id,
            unit_id=part.unit_id,
            bundle_item_id=bundle_item.item_id,
            performed_on=command.performed_on,
        ),
    ]
    if part.location_id != bundle_item.location_id:
        events.append(
            ItemMoved(
                item_id=part.item_id,
                unit_id=part.unit_id,
                from_location_id=part.location_id,
                to_location_id=bundle_item.location_id,
                performed_on=command.performed_on,
                with_bundle_item_id=bundle_item.item_id,
            )
        )
    return events


def unbundle(
    bundle_item: Item | None,
    part: Item | None,
    command: UnbundlePart,
    *,
    inventory: UnitInventory,
    today: date,
) -> list[Event]:
    """Decide the events for taking `part` out of `bundle_item` (it stays where it is)."""
    bundle_item = require_item(bundle_item, command.item_id)
    part = require_item(part, command.part_item_id)
    if part.item_id not in bundle_item.parts:
        if part.bundle_item_id is None:
            return []  # already out: a retried request changes nothing
        raise BundleRuleError(bundle_item.item_id, part.item_id, "it is not a part of this bundle")
    if bundle_item.transfer is not None or part.transfer is not None:
        require_present(bundle_item, allow_part=True)
    if bundle_item.is_withdrawn:
        require_present(bundle_item, allow_part=True)
    check_item_dates(
        command.performed_on, [bundle_item, part], today=today, inventories=[inventory]
    )
    return [
        BundlePartRemoved(
            item_id=bundle_item.item_id,
            unit_id=bundle_item.unit_id,
            part_item_id=part.item_id,
            part_category_id=part.category_id,
            reason=command.reason.strip(),
            performed_on=command.performed_on,
        ),
        ItemUnbundled(
            item_id=part.item_id,
            unit_id=part.unit_id,
            bundle_item_id=bundle_item.item_id,
            performed_on=command.performed_on,
        ),
    ]
