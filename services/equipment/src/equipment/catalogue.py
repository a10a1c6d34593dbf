"""The category tree of the equipment catalogue, seeded with the categories the public service uses.

Why this exists: categories decide rules (which items are bundles and which parts they must or may
hold, which items carry serial numbers) and the national registry reports by them, so they are code
reviewed like rules, not rows anyone edits. Products (manufacturer, model) are the catalogue's
changing part and are event-sourced (`domain.product`).

Usage::

    category = CATEGORIES["workstation"]
    category.is_bundle, category.part_rule("monitor")        # True, PartRule(monitor, 1, 2)

Notes: only leaf categories (`is_assignable`) take products; the group nodes exist for browsing and
for counts. Greek labels are what people see; ids never change once published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PartRule:
    """A bundle holds between `minimum` and `maximum` parts of `category_id`."""

    category_id: str
    minimum: int
    maximum: int

    @property
    def is_required(self) -> bool:
        """Return whether a bundle missing this part is flagged."""
        return self.minimum > 0


@dataclass(frozen=True, slots=True)
class Category:
    """A node of the category tree."""

    category_id: str
    label_el: str
    label_en: str
    parent_id: str | None = None
    is_bundle: bool = False
    uses_serial_numbers: bool = True
    is_component: bool = False
    parts: tuple[PartRule, ...] = ()
    is_assignable: bool = True  # a leaf: products (and so items) may be of it

    def part_rule(self, category_id: str) -> PartRule | None:
        """Return the rule for parts of `category_id`, or None if the bundle takes none."""
        return next((rule for rule in self.parts if rule.category_id == category_id), None)


def _group(category_id: str, label_el: str, label_en: str) -> Category:
    return Category(category_id, label_el, label_en, uses_serial_numbers=False, is_assignable=False)


_SEED: tuple[Category, ...] = (
    _group("computers", "Υπολογιστές", "Computers"),
    _group("peripherals", "Περιφερειακά και προβολή", "Peripherals and projection"),
    _group("network", "Δικτυακός εξοπλισμός", "Network equipment"),
    _group("power", "Ενέργεια", "Power"),
    _group("labs", "Φορητά εργαστήρια", "Mobile labs"),
    _group("components", "Μέρη υπολογιστών", "Computer components"),
    Category(
        "workstation",
        "Σταθμός εργασίας (Η/Υ)",
        "Workstation",
        "computers",
        is_bundle=True,
        uses_serial_numbers=False,
        parts=(
            PartRule("cpu", 1, 1),
            PartRule("monitor", 1, 2),
            PartRule("ram", 0, 8),
            PartRule("hard_disk", 0, 4),
        ),
    ),
    Category("laptop", "Φορητός υπολογιστής", "Laptop", "computers"),
    Category("tablet", "Ταμπλέτα", "Tablet", "computers"),
    Category(
        "server",
        "Εξυπηρετητής",
        "Server",
        "computers",
        is_bundle=True,
        parts=(PartRule("ram", 0, 32), PartRule("hard_disk", 0, 24)),
    ),
    Category("printer", "Εκτυπωτής", "Printer", "peripherals"),
    Category("scanner", "Σαρωτής", "Scanner", "peripherals"),
    Category("projector", "Βιντεοπροβολέας", "Projector", "peripherals"),
    Category("interactive_system", "Διαδραστικό σύστημα", "Interactive system", "peripherals"),
    Category("webcam", "Κάμερα υπολογιστή", "Webcam", "peripherals"),
    Category("switch_hub", "Μεταγωγέας (switch/hub)", "Switch / hub", "network"),
    Category("modem_router", "Modem / δρομολογητής", "Modem / router", "network"),
    Category("access_point", "Σημείο ασύρματης πρόσβασης", "Access point", "network"),
    Category(
        "patch_panel",
        "Πάνελ διασύνδεσης (patch panel)",
        "Patch panel",
        "network",
        uses_serial_numbers=False,
    ),
    Category(
        "rack",
        "Ικρίωμα (rack)",
        "Rack",
        "network",
        is_bundle=True,
        uses_serial_numbers=False,
        parts=(
            PartRule("switch_hub", 0, 24),
            PartRule("patch_panel", 0, 24),
            PartRule("modem_router", 0, 4),
            PartRule("server", 0, 12),
            PartRule("ups", 0, 4),
        ),
    ),
    Category(
        "mobile_lab",
        "Φορητό εργαστήριο",
        "Mobile lab",
        "labs",
        is_bundle=True,
        uses_serial_numbers=False,
        parts=(
            PartRule("laptop", 0, 40),
            PartRule("tablet", 0, 40),
            PartRule("access_point", 0, 2),
        ),
    ),
    Category("ups", "Σύστημα αδιάλειπτης τροφοδοσίας (UPS)", "UPS", "power"),
    Category("cpu", "Κεντρική μονάδα", "CPU (system unit)", "components", is_component=True),
    Category("ram", "Μνήμη RAM", "RAM", "components", is_component=True, uses_serial_numbers=False),
    Category("hard_disk", "Σκληρός δίσκος", "Hard disk", "components", is_component=True),
    Category("monitor", "Οθόνη", "Monitor", "components", is_component=True),
)

CATEGORIES: Mapping[str, Category] = {category.category_id: category for category in _SEED}


def category(category_id: str) -> Category | None:
    """Return the category with this id, or None."""
    return CATEGORIES.get(category_id)


def children(parent_id: str | None) -> list[Category]:
    """Return the categories directly under `parent_id` (None: the top level), in seed order."""
    return [c for c in _SEED if c.parent_id == parent_id]
