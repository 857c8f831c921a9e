"""Index study metadata from a PACS over DICOMweb: QIDO-RS to find studies, WADO-RS to read them.

Finding studies: QIDO-RS ``/studies`` filtered on StudyDate ranges and paged with limit/offset
until an empty page (a short page is not the end: a PACS may return fewer than asked). A PACS
may also cap a query's results silently (Orthanc's ``LimitFindResults``), and then offsets past
the cap return nothing. So a date window counts as complete only when its two halves, searched
separately, both find studies and nothing it did not; otherwise each half is searched the same
way (see :func:`find_studies`). Without a cap, that is three paged searches when the studies
span the range, a few more levels when they cluster.

Reading studies: WADO-RS study metadata (every element of every instance, never pixel data),
read into pydicom datasets and through the same per-instance code as files
(``instance_from_dataset``) and the same aggregation, so a study indexed from a PACS gives the
row its files give, with source "dicomweb", and the same PHI audit: identifying elements are
flagged by keyword and their values are never stored, logged or reported. A study whose
metadata cannot be read is reported as skipped ("unreadable: <exception class>"), never as a
message that could quote a value.

Studies without a StudyDate cannot be found by date; the index would quarantine them anyway
(study_date is required).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset

from dashboard.contract import MIN_STUDY_YEAR
from dashboard.ingest.dicom import (
    UNREADABLE,
    Instance,
    Progress,
    ScanResult,
    aggregate,
    instance_from_dataset,
    quiet_pydicom,
)
from dashboard.ingest.dicom_index import (
    DicomIngest,
    check_registered,
    index_scan,
    normalise_institution,
    read_join_manifest,
    require_institution_source,
)

SOURCE = "dicomweb"
PAGE_SIZE = 500
_STUDY_UID = "0020000D"
_SOP_UID = "00080018"

Search = Callable[[str, int, int], list[dict[str, Any]]]
"""(StudyDate range, limit, offset) → one page of QIDO-RS study results (DICOM JSON)."""


def redacted(url: str) -> str:
    """The URL without credentials, query or fragment: what may appear in the index and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def client_for(url: str, session: requests.Session | None = None) -> DICOMwebClient:
    """A DICOMweb client for the service root (e.g. http://pacs:8042/dicom-web).

    A request that fails to connect or is answered "busy" (429, 408, 503, 504) is tried up to
    4 times over about 3.5 s (the library's default waits 30 s before giving up).
    """
    client = DICOMwebClient(url=url.rstrip("/"), session=session)
    client.set_http_retry_params(max_attempts=4, wait_exponential_multiplier=250)
    return client


def _uid(result: dict[str, Any]) -> str | None:
    values = result.get(_STUDY_UID, {}).get("Value") or [""]
    return str(values[0]).strip() or None


def _da(day: dt.date) -> str:
    return f"{day:%Y%m%d}"


def search_window(search: Search, first: dt.date, last: dt.date, page_size: int) -> set[str]:
    """Every study UID a date window's paged search returns (until an empty page)."""
    found: set[str] = set()
    offset = 0
    while True:
        page = search(f"{_da(first)}-{_da(last)}", page_size, offset)
        new = {uid for uid in map(_uid, page) if uid is not None} - found
        if not new:  # an empty page, or a server that ignores offset
            return found
        found |= new
        offset += len(page)


def find_studies(
    search: Search, first: dt.date, last: dt.date, *, page_size: int = PAGE_SIZE
) -> list[str]:
    """Study UIDs dated first..last, searching the halves of any window a cap may have cut.

    A capped search returns a fixed number C of the T > C studies in its window. When both
    halves of a window find studies and together nothing the window did not, the window was
    complete: had it been capped, the two disjoint halves would find more than C between them.
    An empty search is always complete. When only one half finds studies there is no evidence
    yet, so that half is split in turn. Single days cannot be split: a PACS whose cap is below
    its busiest day's studies cannot be searched completely by date.
    """

    def complete(lo: dt.date, hi: dt.date, found: set[str]) -> set[str]:
        if not found or lo >= hi:
            return found
        mid = lo + (hi - lo) // 2
        after_mid = mid + dt.timedelta(days=1)
        left = search_window(search, lo, mid, page_size)
        right = search_window(search, after_mid, hi, page_size)
        if left and right and left | right <= found:
            return found
        return complete(lo, mid, left) | complete(after_mid, hi, right)

    return sorted(complete(first, last, search_window(search, first, last, page_size)))


def _no_bulk_data(*_: Any) -> bytes:
    return b""  # pixel data and other bulk data are never fetched


def instances_from_metadata(
    study_uid: str, metadata: list[dict[str, Any]]
) -> Iterator[tuple[str, Instance | str]]:
    """(name, instance or skip reason) for each instance of one study's WADO-RS metadata."""
    for i, item in enumerate(metadata):
        sop = (item.get(_SOP_UID, {}).get("Value") or [str(i)])[0]
        name = f"studies/{study_uid}/instances/{sop}"
        try:
            ds = Dataset.from_json(dict(sorted(item.items())), bulk_data_uri_handler=_no_bulk_data)
            ds.file_meta = FileMetaDataset()
            outcome: Instance | str = instance_from_dataset(ds)
        except Exception as exc:  # every instance is accounted for; no message is kept
            outcome = UNREADABLE + type(exc).__name__
        yield name, outcome


def scan_dicomweb(
    client: DICOMwebClient,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> ScanResult:
    """Find the studies dated since..until and read their metadata, as a scan of their instances.

    `since` defaults to the earliest study date the contract accepts, `until` to today.
    """
    first = since or dt.date(MIN_STUDY_YEAR, 1, 1)
    last = until or dt.date.today()

    def search(dates: str, limit: int, offset: int) -> list[dict[str, Any]]:
        return client.search_for_studies(
            search_filters={"StudyDate": dates},
            limit=limit,
            offset=offset,
            fields=["StudyInstanceUID"],
        )

    uids = find_studies(search, first, last, page_size=page_size)
    outcomes: list[tuple[str, Instance | str]] = []
    if progress is not None:
        progress(0, len(uids))
    with quiet_pydicom():
        for done, uid in enumerate(uids, start=1):
            try:
                metadata = client.retrieve_study_metadata(uid)
            except Exception as exc:  # the class name only: messages quote URLs and bodies
                outcomes.append((f"studies/{uid}", UNREADABLE + type(exc).__name__))
            else:
                outcomes.extend(instances_from_metadata(uid, metadata))
            if progress is not None:
                progress(done, len(uids))
    return aggregate(outcomes)


def ingest_dicomweb(
    db: Path,
    url: str,
    *,
    institution: str | None = None,
    manifest: Path | None = None,
    since: dt.date | None = None,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
    today: dt.date | None = None,
    session: requests.Session | None = None,
) -> DicomIngest:
    """Index the studies a DICOMweb service holds (dated since `since`) into `db`."""
    institution = normalise_institution(institution)
    joined = read_join_manifest(manifest) if manifest is not None else None
    require_institution_source(institution, joined)
    check_registered(db, institution)
    scan = scan_dicomweb(
        client_for(url, session), since=since, until=today, page_size=page_size, progress=progress
    )
    return index_scan(
        db,
        scan,
        institution=institution,
        manifest=joined,
        label=f"dicomweb:{redacted(url)}",
        source=SOURCE,
        today=today,
    )
