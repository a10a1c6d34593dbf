"""Greek text for people: accent- and case-insensitive search, sort keys and display names.

Why this exists: the national registry writes unit names in unaccented capitals ("ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ"),
people type them in lower case with or without accents ("γυμνάσιο αθηνων"), and both must find the
same school and sort in the same Greek alphabetical order, in Python and inside PostgreSQL.

Usage::

    fold("Γυμνάσιο Αθηνών") == fold("ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ") == "γυμνασιο αθηνων"
    matches("γυμνασιο αθην", "1ο ΓΥΜΝΑΣΙΟ ΑΘΗΝΩΝ")                    # True
    sorted(names, key=sort_key)
    display_name("1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ Ν. ΣΜΥΡΝΗΣ")                    # "1ο Γενικο Λυκειο Ν. Σμυρνης"

    # in a migration: op.execute(fold_function_ddl()); then index ictc_fold(name)
    # in a query: where(and_(*(func.ictc_fold(t.c.name).like(p) for p in sql_like_patterns(q))))

Notes: `ictc_fold(text)` in SQL agrees with `fold` for every text written in the Latin, Greek and
combining-diacritic blocks (`FOLD_SCOPE`); outside them SQL leaves characters as they are. It uses
`translate`, not `lower()`, because `lower()` follows the database's LC_CTYPE (a C-locale database
lower-cases ASCII only), and an index must not change meaning with the locale. `sort_key` orders
like ``ORDER BY ictc_fold(x) COLLATE "C", x COLLATE "C"`` (UTF-8 byte order is code-point order).
Changing the fold changes `fold_function_ddl()`: ship it in a new migration that also reindexes.
"""

# ruff: noqa: RUF001, RUF003  (Greek letters are this module's subject, not look-alikes)

from __future__ import annotations

import re
import unicodedata

FOLD_FUNCTION = "ictc_fold"

# Blocks in which the SQL fold reproduces the Python fold character for character. Kept small on
# purpose: PostgreSQL's translate() scans its `from` list for every input character it does not map.
_COMMON_BLOCKS = (
    range(0x0000, 0x0080),  # Basic Latin
    range(0x0370, 0x0400),  # Greek and Coptic (monotonic Greek)
)
_RARE_BLOCKS = (
    range(0x0080, 0x0250),  # Latin-1 Supplement, Latin Extended-A and -B
    range(0x0300, 0x0370),  # Combining Diacritical Marks (tonos, dialytika, … in decomposed text)
    range(0x1F00, 0x2000),  # Greek Extended (polytonic Greek)
)
FOLD_SCOPE: tuple[range, ...] = _COMMON_BLOCKS + _RARE_BLOCKS
# A superset of the rare blocks as one regex class: a cheap test of whether the long table applies.
_RARE_CLASS = r"[\u0080-\u036f\u1f00-\u1fff]"

# Python's str.split() whitespace, spelled out so SQL collapses exactly the same characters
# (a regex `\s` in PostgreSQL follows the locale for non-ASCII spaces).
_WHITESPACE = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())


def _drop_marks(text: str) -> str:
    return "".join(
        char for char in unicodedata.normalize("NFD", text) if not unicodedata.combining(char)
    )


def fold(text: str) -> str:
    """Return `text` without accents, case or extra whitespace, for comparing and searching."""
    # Marks go before casefold so "ᾳ" loses its iota subscript instead of becoming "αι"; a second
    # pass catches marks that casefold itself produces ("İ" → "i̇"). casefold maps ς to σ.
    folded = _drop_marks(_drop_marks(text).casefold())
    return " ".join(unicodedata.normalize("NFC", folded).split())


def matches(query: str, text: str) -> bool:
    """Return whether every word of `query` occurs in `text`, ignoring accents and case."""
    haystack = fold(text)
    return all(word in haystack for word in fold(query).split())


def sort_key(text: str) -> tuple[str, str]:
    """Return a key that sorts in Greek alphabetical order regardless of accents and case."""
    # Folded Greek letters α…ω are contiguous in code-point order once ς is σ, and Latin, digits
    # and punctuation all come before them; the original text breaks ties so the order is total.
    return (fold(text), text)


def sql_like_patterns(query: str) -> list[str]:
    """Return one LIKE pattern per folded query word, for ``ictc_fold(col) LIKE p``."""
    # Backslash is PostgreSQL's default LIKE escape, so `%`, `_` and `\` typed by a user match
    # themselves.
    escaped = (re.sub(r"([\\%_])", r"\\\1", word) for word in fold(query).split())
    return [f"%{word}%" for word in escaped]


def _sql_literal(text: str) -> str:
    # Standard-conforming strings (the default since PostgreSQL 9.1): only quotes need doubling.
    return "'" + text.replace("'", "''") + "'"


def _sql_regex_class(chars: str) -> str:
    # Escapes rather than raw characters keep control characters out of the DDL text.
    return "[" + "".join(f"\\u{ord(char):04x}" for char in chars) + "]"


def _fold_table(blocks: tuple[range, ...]) -> tuple[str, str, list[tuple[str, str]]]:
    """Return translate()'s from/to strings for `blocks`, and the multi-character folds."""
    mapped_from: list[str] = []
    mapped_to: list[str] = []
    deleted: list[str] = []
    expanded: list[tuple[str, str]] = []
    for block in blocks:
        for code in block:
            char = chr(code)
            folded = fold(char)
            if char.isspace() or folded == char:
                continue  # whitespace is collapsed by the regex, not translated
            if len(folded) == 1:
                mapped_from.append(char)
                mapped_to.append(folded)
            elif not folded:
                deleted.append(char)
            else:
                expanded.append((char, folded))
    # Characters at the end of translate()'s `from` with no partner in `to` are deleted.
    return "".join(mapped_from + deleted), "".join(mapped_to), expanded


def _translate(argument: str, blocks: tuple[range, ...]) -> str:
    mapped_from, mapped_to, expanded = _fold_table(blocks)
    expression = argument
    for char, folded in expanded:  # "ß" → "ss": translate() maps one character to one only
        expression = f"replace({expression}, {_sql_literal(char)}, {_sql_literal(folded)})"
    return f"translate({expression}, {_sql_literal(mapped_from)}, {_sql_literal(mapped_to)})"


def fold_sql_expression(argument: str) -> str:
    """Return a PostgreSQL expression that folds the SQL text expression `argument` like `fold`."""
    # The common case (ASCII and monotonic Greek) scans a table of ~110 characters; the long one
    # (~660) runs only on text that needs it, which made a sequential scan about five times faster.
    # Each character folds on its own and folded characters are fixed points of both tables, so the
    # rare table may run first and the common one after it.
    rare = _translate(argument, _RARE_BLOCKS)
    widened = f"CASE WHEN {argument} ~ '{_RARE_CLASS}' THEN {rare} ELSE {argument} END"
    spaces = _sql_regex_class(_WHITESPACE)
    common = _translate(widened, _COMMON_BLOCKS)
    return f"btrim(regexp_replace({common}, '{spaces}+', ' ', 'g'), ' ')"


def fold_function_ddl(schema: str | None = None) -> str:
    """Return ``CREATE OR REPLACE FUNCTION ictc_fold(text)``: immutable, indexable, like `fold`."""
    name = f"{schema}.{FOLD_FUNCTION}" if schema else FOLD_FUNCTION
    return (
        f"CREATE OR REPLACE FUNCTION {name}(text) RETURNS text\n"
        "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE\n"
        f"RETURN {fold_sql_expression('$1')}"
    )


def drop_fold_function_ddl(schema: str | None = None) -> str:
    """Return the DDL that removes ``ictc_fold(text)``, for a migration's downgrade."""
    name = f"{schema}.{FOLD_FUNCTION}" if schema else FOLD_FUNCTION
    return f"DROP FUNCTION IF EXISTS {name}(text)"


# fmt: off
_ACRONYMS = frozenset(
    {
        # School types and education authorities as the registry abbreviates them.
        "ΓΕΛ", "ΕΠΑΛ", "ΕΠΑΣ", "ΤΕΕ", "ΕΕΕΕΚ", "ΕΕΕΚ", "ΣΜΕΑΕ", "ΕΝΕΕΓΥΛ", "ΙΕΚ", "ΔΙΕΚ", "ΣΔΕ",
        "ΣΕΚ", "ΕΚ", "ΕΚΦΕ", "ΚΠΕ", "ΚΕΣΥ", "ΚΕΔΑΣΥ", "ΚΔΑΠ", "ΠΕΚΕΣ", "ΚΕΠΛΗΝΕΤ", "ΠΔΕ", "ΔΔΕ",
        "ΔΠΕ", "ΔΙΠΕ", "ΔΙΔΕ", "ΠΕ", "ΔΕ", "ΠΠΣ", "ΠΣ", "ΕΠΣ", "ΜΣ", "ΥΠΑΙΘ", "ΥΠΑΙΘΑ", "ΥΠΕΠΘ",
        "ΤΠΕ", "ΚΕΕ", "ΣΧ", "ΝΠΔΔ", "ΝΠΙΔ", "ΑΕΙ", "ΤΕΙ", "ΕΝΕΕΓΥ", "ICT", "IT",
    }
)
_SMALL_WORDS = frozenset(
    {
        "ΚΑΙ", "ΤΟΥ", "ΤΗΣ", "ΤΩΝ", "ΤΟ", "ΤΑ", "ΤΟΝ", "ΤΗΝ", "ΤΙΣ", "ΤΟΥΣ", "ΣΤΟ", "ΣΤΗ", "ΣΤΗΝ",
        "ΣΤΟΝ", "ΣΤΑ", "ΣΤΙΣ", "ΣΤΟΥΣ", "ΣΕ", "ΓΙΑ", "ΜΕ", "ΑΠΟ", "AND", "OF", "THE", "FOR",
    }
)
# fmt: on
_GREEK_VOWELS = frozenset("ΑΕΗΙΟΥΩ")
# "Β'", "ΙΒ΄", "Β’": a Greek numeral (keraia or an apostrophe standing in for it).
_GREEK_NUMERAL = re.compile(r"[Α-Ω]{1,3}['΄ʹ’]")
# "Ν.", "Π.Ε.", "Δ.Ε.": initials keep their capitals.
_INITIALS = re.compile(r"(?:\w\.)+", re.UNICODE)
_ROMAN_NUMERAL = re.compile(r"[IVXLC]{2,}")
_PUNCTUATION = "()[]{}«»\"',.;:!·"


def _is_kept_as_written(core: str) -> bool:
    letters = [char for char in core if char.isalpha()]
    if len(letters) <= 1:
        return True  # "Ν" in "Ν ΙΩΝΙΑΣ" is an abbreviation, and one capital is its own title case
    if core in _ACRONYMS or _ROMAN_NUMERAL.fullmatch(core):
        return True
    is_greek = all("Α" <= char <= "Ω" for char in letters)
    return is_greek and not _GREEK_VOWELS.intersection(letters)  # no vowel: cannot be a word


def _title_segment(segment: str) -> str:
    core = segment.strip(_PUNCTUATION)
    lowered = segment.lower()  # lower() of the whole segment writes the final sigma: "ΑΣ" → "ας"
    if core[:1].isdigit():
        return lowered  # ordinals and counts: "1Ο" → "1ο", "12/ΘΕΣΙΟ" → "12/θεσιο"
    if not core or _is_kept_as_written(core):
        return segment
    for index, char in enumerate(lowered):
        if char.isalpha():
            upper = char.upper()
            if len(upper) != 1:
                return lowered
            return lowered[:index] + upper + lowered[index + 1 :]
    return lowered


def _display_word(word: str, *, is_first: bool) -> str:
    if _GREEK_NUMERAL.fullmatch(word) or _INITIALS.fullmatch(word):
        return word
    if not is_first and word.strip(_PUNCTUATION) in _SMALL_WORDS:
        return word.lower()
    return "-".join(_title_segment(segment) for segment in word.split("-"))


def _is_written_in_capitals(words: list[str]) -> bool:
    # "1ο ΓΕΝΙΚΟ ΛΥΚΕΙΟ" still counts as capitals: an ordinal's suffix is lower case by convention.
    return not any(char.islower() for word in words if not word[:1].isdigit() for char in word)


def display_name(text: str) -> str:
    """Return the registry's capitalised name in title case for display; never add accents."""
    words = text.split()
    if not _is_written_in_capitals(words):
        return " ".join(words)  # someone already chose the case: keep it
    return " ".join(_display_word(word, is_first=index == 0) for index, word in enumerate(words))
