"""The product aggregate (stream `product:<uuid>`): proposed by units, approved or merged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from uuid import UUID

from equipment import catalogue
from equipment.commands import ApproveProduct, MergeProduct, ProposeProduct, RejectProduct
from equipment.domain.errors import (
    CategoryNotFoundError,
    InvalidItemDataError,
    ProductAlreadyProposedError,
    ProductNotFoundError,
    ProductStateError,
)
from shared.events.base import Event
from shared.events.equipment import (
    ProductApproved,
    ProductMerged,
    ProductProposed,
    ProductRejected,
)
from shared.greek import fold

PRODUCT_PREFIX = "product:"


class ProductStatus(StrEnum):
    """Where a product stands in the catalogue."""

    PROPOSED = "proposed"  # pending approval
    APPROVED = "approved"
    REJECTED = "rejected"
    MERGED = "merged"


@dataclass(frozen=True, slots=True)
class Product:
    """A product as its stream says it is now."""

    product_id: UUID
    category_id: str
    manufacturer: str
    model: str
    part_number: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    proposed_by_unit_id: str | None = None
    status: ProductStatus = ProductStatus.PROPOSED
    merged_into: UUID | None = None
    version: int = 0

    @property
    def manufacturer_key(self) -> str:
        """Return the key under which this manufacturer's serial numbers are unique."""
        return manufacturer_key(self.manufacturer)


def product_stream(product_id: UUID) -> str:
    """Return the stream id of a product."""
    return f"{PRODUCT_PREFIX}{product_id}"


@lru_cache(maxsize=4096)  # a pure function of a few hundred names; an import asks per row
def manufacturer_key(manufacturer: str) -> str:
    """Return a manufacturer's name folded (accents, case, spaces, dots) for uniqueness keys."""
    return "".join(ch for ch in fold(manufacturer) if ch.isalnum())


def evolve_product(product: Product | None, event: Event, version: int) -> Product | None:
    """Return the product after `event` (at stream `version`)."""
    match event:
        case ProductProposed():
            return Product(
                product_id=event.product_id,
                category_id=event.category_id,
                manufacturer=event.manufacturer,
                model=event.model,
                part_number=event.part_number,
                attributes=dict(event.attributes),
                proposed_by_unit_id=event.proposed_by_unit_id,
                version=version,
            )
        case ProductApproved() if product is not None:
            return replace(product, status=ProductStatus.APPROVED, version=version)
        case ProductRejected() if product is not None:
            return replace(product, status=ProductStatus.REJECTED, version=version)
        case ProductMerged() if product is not None:
            return replace(
                product,
                status=ProductStatus.MERGED,
                merged_into=event.into_product_id,
                version=version,
            )
        case _:
            return product


def replay_product(history: Iterable[tuple[Event, int]]) -> Product | None:
    """Fold a product's (event, version) pairs."""
    product: Product | None = None
    for event, version in history:
        product = evolve_product(product, event, version)
    return product


def _clean(value: str, field_name: str, *, limit: int = 200) -> str:
    text = " ".join(value.split())
    if not text:
        raise InvalidItemDataError(field_name, "must not be blank")
    if len(text) > limit:
        raise InvalidItemDataError(field_name, f"at most {limit} characters")
    return text


def propose_product(
    existing: Product | None, command: ProposeProduct, *, now: datetime
) -> list[Event]:
    """Decide the events for proposing a product (and approving it, for the Ministry's own)."""
    category = catalogue.category(command.category_id)
    if category is None:
        raise CategoryNotFoundError(command.category_id)
    if not category.is_assignable:
        raise CategoryNotFoundError(command.category_id, "a group of categories takes no products")
    manufacturer = _clean(command.manufacturer, "manufacturer")
    model = _clean(command.model, "model")
    part_number = (command.part_number or "").strip() or None
    if existing is not None:
        same = (
            existing.category_id == command.category_id
            and existing.manufacturer == manufacturer
            and existing.model == model
            and existing.part_number == part_number
            and dict(existing.attributes) == dict(command.attributes)
        )
        if not same:
            raise ProductAlreadyProposedError(command.product_id)
        return []  # a retried proposal changes nothing
    events: list[Event] = [
        ProductProposed(
            product_id=command.product_id,
            category_id=command.category_id,
            manufacturer=manufacturer,
            model=model,
            part_number=part_number,
            attributes=dict(command.attributes),
            proposed_by_unit_id=command.proposed_by_unit_id,
            proposed_at=now,
        )
    ]
    if command.is_approved:
        events.append(ProductApproved(product_id=command.product_id, approved_at=now))
    return events


def approve_product(
    product: Product | None, command: ApproveProduct, *, now: datetime
) -> list[Event]:
    """Decide the events for approving a proposed product."""
    if product is None:
        raise ProductNotFoundError(command.product_id)
    if product.status is ProductStatus.APPROVED:
        return []
    if product.status is not ProductStatus.PROPOSED:
        raise ProductStateError(product.product_id, product.status.value, "approved")
    return [ProductApproved(product_id=product.product_id, approved_at=now)]


def reject_product(
    product: Product | None, command: RejectProduct, *, now: datetime
) -> list[Event]:
    """Decide the events for refusing a proposed product."""
    if product is None:
        raise ProductNotFoundError(command.product_id)
    if product.status is ProductStatus.REJECTED:
        return []
    if product.status is not ProductStatus.PROPOSED:
        raise ProductStateError(product.product_id, product.status.value, "rejected")
    reason = _clean(command.reason, "reason", limit=2000)
    return [ProductRejected(product_id=product.product_id, reason=reason, rejected_at=now)]


def merge_product(
    product: Product | None, into: Product | None, command: MergeProduct, *, now: datetime
) -> list[Event]:
    """Decide the events for merging a duplicate product into an approved one of its category."""
    if product is None:
        raise ProductNotFoundError(command.product_id)
    if into is None:
        raise ProductNotFoundError(command.into_product_id)
    if product.status is ProductStatus.MERGED:
        if product.merged_into == into.product_id:
            return []
        raise ProductStateError(product.product_id, product.status.value, "merged again")
    if into.product_id == product.product_id:
        raise ProductStateError(product.product_id, product.status.value, "merged into itself")
    if into.status is not ProductStatus.APPROVED:
        raise ProductStateError(into.product_id, into.status.value, "the target of a merge")
    if into.category_id != product.category_id:
        raise ProductStateError(
            product.product_id, product.status.value, f"merged into a {into.category_id}"
        )
    return [
        ProductMerged(product_id=product.product_id, into_product_id=into.product_id, merged_at=now)
    ]
