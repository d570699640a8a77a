"""Korean files in EUC-KR (Excel's "CSV" on a Korean Windows): read as Korean, or refused
naming Korean among the code pages they read as just as well."""

from __future__ import annotations

import io

import pytest

from bot.imports.reading import CsvFileError, CsvReader
from tests.imports import csv_samples as samples

# Three customers whose names (9 syllables) also read as halfwidth katakana and as common
# hanzi: the walkthrough's file, refused "as Japanese (Shift-JIS) or Simplified Chinese (GBK)"
AS_KANA_TOO = [("서연", "최", "seoyeon@example.kr"), ("정훈", "송", "junghoon@example.kr"),
               ("성민", "신", "sungmin@example.kr")]  # fmt: skip
# ... and as Thai letters: refused "as Thai (Windows-874) or Japanese (Shift-JIS)"
AS_THAI_TOO = [("서윤", "윤", "seoyun@example.kr"), ("민준", "안", "minjun@example.kr"),
               ("도윤", "황", "doyun@example.kr")]  # fmt: skip


@pytest.mark.parametrize("people", [AS_KANA_TOO, AS_THAI_TOO], ids=["kana", "thai"])
def test_a_few_korean_names_in_euc_kr_read_as_korean(people: list[tuple[str, str, str]]) -> None:
    """A Korean file's syllables are pairs of halfwidth katakana in Shift-JIS and a Thai
    consonant and letter in cp874 too, so it tied with Japanese or Thai, which only Chinese
    was weighed against, and was refused naming them, never Korean."""
    data = samples.csv_bytes(samples.people_rows(people), encoding="euc_kr")

    with CsvReader(io.BytesIO(data)) as reader:
        records = list(reader.records())

    assert reader.encoding == "cp949"
    assert [(fields[1], fields[2], fields[0]) for _, fields in records] == people


def test_one_korean_name_that_reads_as_other_scripts_too_is_refused_naming_korean() -> None:
    """One line is too little to tell (it is Thai, Chinese and Korean alike): the refusal
    named the first two readings only, "Thai (Windows-874) or Simplified Chinese (GBK)",
    and Korean, last of the code pages, never."""
    data = "email,first_name,last_name\r\nseo@example.kr,서연,장\r\n".encode("euc_kr")

    with pytest.raises(CsvFileError) as failure:
        CsvReader(io.BytesIO(data))

    assert ("its characters read just as well as Thai (Windows-874), Simplified Chinese (GBK), "
            "Traditional Chinese (Big5) or Korean (EUC-KR) text, so we won't guess which. "
            "Save it as CSV UTF-8") in str(failure.value), failure.value  # fmt: skip
