"""Inputs at URLs of stores heaters do not read: read on the submitter's machine, then packed."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from heatgrid.cli._url_inputs import fetched_by_heaters, read_for_packing, split_by_reader
from heatgrid.core.errors import InputError


@pytest.mark.parametrize(
    ("url", "by_heaters"),
    [
        ("https://example.org/train.csv#sha256=" + "ab" * 32, True),
        ("http://example.org/train.csv", True),
        ("s3://bucket/train.csv", False),
        ("gs://bucket/train.csv", False),
        ("file:///data/train.csv", False),
        ("memory://train.csv", False),
    ],
)
def test_only_http_inputs_are_left_to_the_heaters(url: str, by_heaters: bool) -> None:
    assert fetched_by_heaters(url) is by_heaters


def test_urls_are_split_by_who_reads_them() -> None:
    heater = "https://example.org/train.csv#sha256=" + "ab" * 32
    urls = {"train": heater, "labels": "s3://bucket/labels.csv", "extra": "file:///x"}
    assert split_by_reader(urls) == (
        {"labels": "s3://bucket/labels.csv", "extra": "file:///x"},
        {"train": heater},
    )


def test_each_input_is_copied_whole_under_its_name(tmp_path: Path) -> None:
    big = bytes(range(256)) * 9000  # over one read's chunk of 1 MiB
    with fsspec.open("memory://heatgrid-test/big.bin", "wb") as file:
        file.write(big)
    source = tmp_path / "small.csv"
    source.write_text("1,2\n")
    copied = read_for_packing(
        {"big": "memory://heatgrid-test/big.bin", "small": source.as_uri()}, tmp_path / "into"
    )
    assert copied == {"big": tmp_path / "into" / "big", "small": tmp_path / "into" / "small"}
    assert copied["big"].read_bytes() == big
    assert copied["small"].read_text() == "1,2\n"
    fsspec.filesystem("memory").rm("heatgrid-test/big.bin")
    assert read_for_packing({}, tmp_path / "unused") == {}
    assert not (tmp_path / "unused").exists()


def test_inputs_over_the_limit_are_refused_and_no_part_copy_is_left(tmp_path: Path) -> None:
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"x" * 600)
    second.write_bytes(b"y" * 600)
    urls = {"a": first.as_uri(), "b": second.as_uri()}
    assert len(read_for_packing(urls, tmp_path / "fits", max_bytes=1200)) == 2
    with pytest.raises(InputError, match=r"input 'b': the inputs read from URLs are over"):
        read_for_packing(urls, tmp_path / "over", max_bytes=1199)
    assert [path.name for path in (tmp_path / "over").iterdir()] == ["a"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch://bucket/k", "cannot read nosuch://bucket/k: ValueError: Protocol not known"),
        ("memory://heatgrid-test/absent", "cannot read memory://heatgrid-test/absent: FileNot"),
    ],
)
def test_an_input_that_cannot_be_read_is_named(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(InputError, match=f"input 'train': {message}"):
        read_for_packing({"train": url}, tmp_path)
    assert list(tmp_path.iterdir()) == []
