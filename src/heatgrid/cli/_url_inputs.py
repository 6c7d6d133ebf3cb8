"""Inputs named by URLs of stores heaters do not read, read here and packed with the job.

Heaters fetch ``http://`` and ``https://`` inputs themselves (with ``#sha256=``, checked by
each heater). Any other fsspec URL (``s3://bucket/key``, ``gs://…``, ``az://…``, ``file://…``)
names a store that needs the customer's own credentials, which a heater in someone's home must
never hold: ``heatgrid jobs submit`` and ``run-local`` read such an input on the customer's
machine, with the credentials fsspec finds there (``AWS_*`` variables, ``~/.aws``, …), and pack
it into the job's content-addressed artifact like a local file. A second submission of the
same bytes uploads nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from heatgrid.core.errors import InputError
from heatgrid.jobs.artifact import DEFAULT_MAX_ARTIFACT_BYTES

__all__ = ["fetched_by_heaters", "read_for_packing", "split_by_reader"]

_CHUNK_BYTES = 1 << 20


def fetched_by_heaters(url: str) -> bool:
    """Return True if heaters fetch this input URL themselves (``http://``, ``https://``)."""
    return urlsplit(url).scheme in {"http", "https"}


def split_by_reader(urls: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Return (the URLs read here and packed, the URLs heaters fetch), each by input name."""
    read_here = {name: url for name, url in urls.items() if not fetched_by_heaters(url)}
    return read_here, {name: url for name, url in urls.items() if name not in read_here}


def read_for_packing(
    urls: Mapping[str, str], into: Path, *, max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
) -> dict[str, Path]:
    """Copy each input from its fsspec URL into ``into``; return each one's file by name.

    Parameters
    ----------
    urls : mapping of str to str
        Input name to fsspec URL (``s3://bucket/train.csv``).
    into : Path
        Directory the copies are written to (``into / NAME``).
    max_bytes : int
        Most bytes of all the inputs together [bytes]; more than a job's artifact may hold.

    Raises
    ------
    InputError
        An input could not be read (no such store or file, no access, its store's library is
        not installed) or the inputs are over ``max_bytes``; the message names the input.
    """
    if not urls:
        return {}
    into.mkdir(parents=True, exist_ok=True)
    copied: dict[str, Path] = {}
    total_bytes = 0
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        for name, url in sorted(urls.items()):
            copied[name] = into / name
            total_bytes = _copy(name, url, copied[name], total_bytes, max_bytes, progress)
    return copied


def _copy(  # noqa: PLR0917
    name: str,
    url: str,
    target: Path,
    total_bytes: int,
    max_bytes: int,
    progress: Progress,
) -> int:
    """Copy one input to ``target``; return the bytes of all the inputs copied so far."""
    import fsspec  # noqa: PLC0415 - only a submission with such inputs needs it

    task = progress.add_task(f"reading input {name!r}", total=None)
    try:
        with fsspec.open(url, "rb") as source, target.open("wb") as sink:
            progress.update(task, total=getattr(source, "size", None))
            while chunk := source.read(_CHUNK_BYTES):
                total_bytes += len(chunk)
                if total_bytes > max_bytes:
                    raise InputError(
                        f"input {name!r}: the inputs read from URLs are over "
                        f"{max_bytes / 2**20:.0f} MiB, more than a job may pack; put a large "
                        "file at an https:// address and give it as URL#sha256=<its "
                        "SHA-256>, so that each heater fetches it where it is"
                    )
                sink.write(chunk)
                progress.advance(task, len(chunk))
    except InputError:
        target.unlink(missing_ok=True)
        raise
    # fsspec's stores raise their own kinds (botocore's, aiohttp's, ImportError for a store
    # whose library is missing): each is the customer's to fix, named with its URL
    except Exception as error:
        target.unlink(missing_ok=True)
        raise InputError(
            f"input {name!r}: cannot read {url}: {type(error).__name__}: {error}"
        ) from None
    return total_bytes
