"""Bulk import row rules: the pure checks every CSV row goes through before any command runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.greek import fold
from units.bulkimport import (
    PRIVATE,
    ImportFormatError,
    ImportRow,
    ImportRules,
    Outcome,
    RowResult,
    changed_details,
    read_csv_rows,
    read_csv_stream,
    validate_row,
)

RULES = ImportRules(
    known_unit_types=frozenset(fold(t) for t in ("ΓΥΜΝΑΣΙΟ", "ΓΕΝΙΚΟ ΛΥΚΕΙΟ", "ΝΗΠΙΑΓΩΓΕΙΟ")),
    default_parent="unplaced",
)


def row(**values: str) -> dict[str, str | None]:
    base: dict[str, str | None] = {
        "registry_code": "0551198",
        "name": "1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ",
        "unit_type": "ΓΕΝΙΚΟ ΛΥΚΕΙΟ",
        "directorate_code": "0500105",
    }
    base.update(values)
    return base


def accepted(**values: str) -> ImportRow:
    result = validate_row(2, row(**values), RULES)
    assert isinstance(result, ImportRow), result
    return result


def refused(**values: str) -> RowResult:
    result = validate_row(7, row(**values), RULES)
    assert isinstance(result, RowResult), result
    assert result.outcome is Outcome.ERROR
    assert result.line == 7
    return result


def test_a_plain_secondary_school_is_placed_under_its_directorate() -> None:
    got = accepted()
    assert got.parent_code == "0500105"
    assert got.notes == ()
    assert got.legal_character is None


def test_values_are_trimmed_and_inner_whitespace_collapsed() -> None:
    got = accepted(name="  1ο  ΓΕΝΙΚΟ\nΛΥΚΕΙΟ ", address=" ")
    assert got.name == "1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ"
    assert got.address is None


@pytest.mark.parametrize("code", ["SEK012", "01523003", "diekek", "sgm99", "sivit97", "0000123"])
def test_the_other_code_shapes_the_service_states_are_accepted(code: str) -> None:
    assert accepted(registry_code=code).registry_code == code


@pytest.mark.parametrize(
    "code", ["IDG0019", "123456", "012345678", "SEKA12", "05 51198", "0551198!"]
)
def test_other_codes_are_refused_with_the_reason(code: str) -> None:
    result = refused(registry_code=code)
    assert result.field == "registry_code"
    assert result.reason is not None
    assert "not accepted" in result.reason


@pytest.mark.parametrize("column", ["registry_code", "name", "unit_type"])
def test_required_values_must_not_be_blank(column: str) -> None:
    result = refused(**{column: "  "})
    assert result.field == column
    assert result.reason == f"{column}: is required"


def test_a_unit_type_outside_the_reference_list_is_kept_with_a_note() -> None:
    got = accepted(unit_type="Ειδικό Γυμνάσιο")
    assert got.unit_type == "Ειδικό Γυμνάσιο"
    assert any("not in the reference list" in note for note in got.notes)


def test_parent_comes_from_parent_code_then_directorate_then_the_default() -> None:
    assert accepted(parent_code="9999901").parent_code == "9999901"
    assert accepted(directorate_code="").parent_code == "unplaced"
    rules = ImportRules(placement={"0551198": "9999901"})
    placed = validate_row(2, row(), rules)
    assert isinstance(placed, ImportRow)
    assert placed.parent_code == "9999901"


def test_no_parent_at_all_is_an_error() -> None:
    result = validate_row(3, row(directorate_code=""), ImportRules())
    assert isinstance(result, RowResult)
    assert result.field == "parent_code"


def test_a_unit_cannot_be_its_own_parent_and_the_parent_code_is_checked() -> None:
    assert refused(parent_code="0551198").field == "parent_code"
    assert refused(directorate_code="XX01").field == "directorate_code"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("mm_id", "12a"),
        ("postal_code", "1043"),
        ("postal_code", "ΤΚ10431"),
        ("operation_shift", "ΠΡΩΙΝΟ"),
        ("legal_character", "ΜΙΚΤΟ"),
    ],
)
def test_a_bad_optional_cell_rejects_the_whole_row(column: str, value: str) -> None:
    result = refused(**{column: value})
    assert result.field == column
    assert result.reason is not None
    assert result.reason.startswith(f"{column}: ")


def test_optional_cells_are_normalised() -> None:
    got = accepted(postal_code="104 31", operation_shift="εσπερινό", legal_character="δημόσιο")
    assert got.postal_code == "10431"
    assert got.operation_shift == "ΕΣΠΕΡΙΝΟ"
    assert got.legal_character == "ΔΗΜΟΣΙΟ"


@pytest.mark.parametrize(
    "name", ["ΙΔΙΩΤΙΚΟ ΓΥΜΝΑΣΙΟ ΝΑΥΠΑΚΤΟΣ", "Ιδιωτικό Νηπιαγωγείο «Η Κιβωτός»", "ΓΕΛ (ΙΔΙΩΤΙΚΟ)"]
)
def test_private_schools_are_accepted_marked_and_noted(name: str) -> None:
    got = accepted(name=name)
    assert got.legal_character == PRIVATE
    assert any("ΙΔΙΩΤΙΚ" in note for note in got.notes)


def test_a_public_legal_character_for_a_private_name_is_an_error() -> None:
    assert refused(name="ΙΔΙΩΤΙΚΟ ΓΥΜΝΑΣΙΟ", legal_character="ΔΗΜΟΣΙΟ").field == "legal_character"


def test_only_given_details_that_differ_count_as_changes() -> None:
    class Stored:
        name = "1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ΑΘΗΝΩΝ"
        unit_type = "ΓΕΝΙΚΟ ΛΥΚΕΙΟ"
        mm_id = "1000003"
        municipality = "ΑΘΗΝΑΙΩΝ"
        address: str | None = None
        postal_code: str | None = None
        operation_shift: str | None = None
        legal_character: str | None = None

    assert changed_details(Stored(), accepted(mm_id="1000003")) == {}
    assert changed_details(Stored(), accepted(mm_id="1000004", address="ΣΟΛΩΝΟΣ 1")) == {
        "mm_id": "1000004",
        "address": "ΣΟΛΩΝΟΣ 1",
    }


CSV = (
    "registry_code,name,unit_type,directorate_code,source_row_id\r\n"
    '0551198,"1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ ""ΑΘΗΝΩΝ""",ΓΕΝΙΚΟ ΛΥΚΕΙΟ,0500105,school_list:1\r\n'
    '0551199,"ΓΥΜΝΑΣΙΟ\nΜΕ ΔΥΟ ΓΡΑΜΜΕΣ",ΓΥΜΝΑΣΙΟ,0500105,school_list:2\r\n'
    "\r\n"
    "SEK012,ΕΡΓΑΣΤΗΡΙΑΚΟ ΚΕΝΤΡΟ ΑΘΗΝΑΣ,ΕΡΓΑΣΤΗΡΙΑΚΟ ΚΕΝΤΡΟ,,school_list:3"
)
EXPECTED = [
    (2, "0551198", '1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ "ΑΘΗΝΩΝ"'),
    (3, "0551199", "ΓΥΜΝΑΣΙΟ\nΜΕ ΔΥΟ ΓΡΑΜΜΕΣ"),
    (6, "SEK012", "ΕΡΓΑΣΤΗΡΙΑΚΟ ΚΕΝΤΡΟ ΑΘΗΝΑΣ"),
]


def test_a_file_is_read_row_by_row_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode())
    got = [(line, r["registry_code"], r["name"]) for line, r in read_csv_rows(path)]
    assert got == EXPECTED
    assert len(list(read_csv_rows(path, limit=2))) == 2


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 3, 7, 64, 100_000])
async def test_a_stream_gives_the_same_rows_whatever_the_chunk_size(size: int) -> None:
    # Chunks of one byte split the two-byte Greek letters: the decoder must carry them over.
    data = CSV.encode()
    got = [
        (line, r["registry_code"], r["name"])
        async for line, r in read_csv_stream(chunks_of(data, size))
    ]
    assert got == EXPECTED


async def test_a_stream_without_the_required_columns_is_refused_as_a_whole() -> None:
    with pytest.raises(ImportFormatError, match="unit_type"):
        _ = [r async for r in read_csv_stream(chunks_of(b"registry_code,name\n1,2\n", 4))]


async def test_a_stream_that_is_not_utf8_is_refused_as_a_whole() -> None:
    body = "registry_code,name,unit_type\n0551198,ΓΥΜΝΑΣΙΟ,ΓΥΜΝΑΣΙΟ\n".encode("iso-8859-7")
    with pytest.raises(ImportFormatError, match="UTF-8"):
        _ = [r async for r in read_csv_stream(chunks_of(body, 16))]
