"""`ingest dicomweb` against a real Orthanc PACS with its DICOMweb plugin, on loopback.

The fixture starts /usr/sbin/Orthanc (Debian packages `orthanc`, `orthanc-dicomweb`, installed
by .ci/run) with its own configuration in a temp folder, refusing remote access, with a result
cap (LimitFindResults) far below the number of studies, fills it with generated studies and
stops it with SIGTERM to its own PID. The same files are also indexed from disk: both paths
must give the same index rows.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from dicom_factory import make_dataset, uid, write_dicom
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dicom_ingest import (
    NEEDLES,
    PLANTED,
    assert_no_planted_value,
    every_text_in_index,
    new_registered_db,
    raw_index_bytes,
    run_cli,
    table,
)
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.ingest.dicomweb import Search, find_studies, redacted

ORTHANC = Path("/usr/sbin/Orthanc")
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CAP = 5  # Orthanc's LimitFindResults: every QIDO search is silently cut to about this many
pytestmark = pytest.mark.xdist_group("orthanc")
runner = CliRunner()


@dataclass(frozen=True)
class Pacs:
    url: str
    files: Path
    study_dates: dict[str, str]  # study_uid → StudyDate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fill(files: Path) -> dict[str, str]:
    """Write 24 studies (1–3 series of 1–2 instances), some carrying identifying values."""
    dates: dict[str, str] = {}
    for n in range(24):
        study = uid(f"pacs-{n}")
        date = f"{2023 + n % 3}{1 + n % 12:02d}{1 + n % 27:02d}"
        dates[study] = date
        extra: dict[str, object] = {}
        if n % 4 == 0:
            extra = dict(PLANTED) | {"BurnedInAnnotation": "YES"}
        if n % 5 == 1:
            extra["PatientBirthDate"] = "19800615"
        else:
            extra["PatientAge"] = f"0{20 + n}Y"
        modality = "SR" if n == 7 else ("CT", "MR", "DX", "US")[n % 4]
        for s in range(1 + n % 3):
            series = uid(f"pacs-{n}-{s}")
            for i in range(1 + (n + s) % 2):
                ds = make_dataset(
                    study,
                    series_uid=series,
                    modality=modality,
                    StudyDate=date,
                    PatientID=f"PSEUDO-P{n:03d}",
                    PatientSex="MFO"[n % 3],
                    BodyPartExamined=("CHEST", "HEAD", "ABDOMEN")[n % 3],
                    Manufacturer="SIEMENS" if n % 2 else "GE MEDICAL SYSTEMS",
                    ManufacturerModelName="Model X",
                    InstitutionName="अस्पताल जयपुर" if n % 6 == 0 else "AIIMS",
                    SpecificCharacterSet="ISO_IR 192",
                    **extra,
                )
                write_dicom(files / f"s{n:02d}" / f"{s}-{i}.dcm", ds)
    return dates


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    if not ORTHANC.exists() or not PLUGIN.exists():
        pytest.skip(
            f"Orthanc is not installed ({ORTHANC} or its DICOMweb plugin is missing): "
            "`apt-get install orthanc orthanc-dicomweb`, as .ci/run does"
        )
    root = tmp_path_factory.mktemp("orthanc")
    port = _free_port()
    config = {
        "Name": "test-pacs",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpServerEnabled": True,
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,  # it listens on every interface: answer loopback only
        "AuthenticationEnabled": False,
        "SslEnabled": False,
        "StableAge": 1,
        "SaveJobs": False,
        "LimitFindResults": CAP,
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "WadoRoot": "/wado",
        },
    }
    (root / "orthanc.json").write_text(json.dumps(config), encoding="utf-8")
    log = (root / "orthanc.log").open("wb")
    server = subprocess.Popen(
        [str(ORTHANC), str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/system", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Orthanc did not start; see {root / 'orthanc.log'}")
            time.sleep(0.1)
        files = root / "files"
        dates = _fill(files)
        for path in sorted(files.rglob("*.dcm")):
            response = requests.post(
                f"{base}/instances",
                data=path.read_bytes(),
                headers={"Content-Type": "application/dicom"},
                timeout=30,
            )
            response.raise_for_status()
        yield Pacs(url=f"{base}/dicom-web", files=files, study_dates=dates)
    finally:
        server.send_signal(signal.SIGTERM)  # our own child, by its PID
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_the_pacs_caps_its_searches(pacs: Pacs) -> None:
    """The premise of the next tests: one plain search does not see every study."""
    response = requests.get(f"{pacs.url}/studies", params={"limit": 100}, timeout=10)
    assert len(pacs.study_dates) == 24 > len(response.json()) >= CAP


def test_dicomweb_gives_the_rows_the_files_give(
    pacs: Pacs, registered_db: Path, tmp_path: Path
) -> None:
    code, out, err = invoke("ingest", "dicomweb", pacs.url, "--db", registered_db,
                            "--institution", "TEST-KA-01", "--page-size", "4",
                            "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    files = sorted(pacs.files.rglob("*.dcm"))
    assert report["studies"] == 24 and report["rows_read"] == 24
    assert report["files_seen"] == report["files_indexed"] == report["instances"] == len(files)
    assert report["quarantined"] == 1  # the SR study
    assert report["file"] == f"dicomweb:{pacs.url}"
    local = new_registered_db(tmp_path / "local.duckdb")
    code, out, err = invoke("ingest", "dicom", pacs.files, "--db", local,
                            "--institution", "TEST-KA-01", "--workers", "1", "--json")  # fmt: skip
    assert code == 0, err
    from_files = json.loads(out)
    for key in ("series", "instances", "phi_flagged_files", "phi_tag_files", "inserted"):
        assert report[key] == from_files[key], key
    query = "SELECT * EXCLUDE (source, ingested_at, patient_key) FROM study ORDER BY study_uid"
    assert table(registered_db, query) == table(local, query)
    assert table(registered_db, "SELECT DISTINCT source FROM study") == [{"source": "dicomweb"}]
    audit = "SELECT * EXCLUDE (source, scanned_at) FROM phi_flag ORDER BY ALL"
    assert table(registered_db, audit) == table(local, audit)
    assert len(table(registered_db, audit)) > 0
    again = json.loads(invoke("ingest", "dicomweb", pacs.url, "--db", registered_db,
                              "--institution", "TEST-KA-01", "--json")[1])  # fmt: skip
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 23)


def test_since_takes_only_studies_dated_from_that_day(pacs: Pacs, registered_db: Path) -> None:
    expected = sorted(u for u, d in pacs.study_dates.items() if d >= "20250101")
    code, out, err = invoke("ingest", "dicomweb", pacs.url, "--db", registered_db,
                            "--institution", "TEST-KA-01", "--since", "2025-01-01",
                            "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["studies"] == len(expected) == 8
    stored = table(registered_db, "SELECT study_uid FROM study ORDER BY study_uid")
    assert [r["study_uid"] for r in stored] == expected


def test_identifying_values_from_the_pacs_are_stored_nowhere(
    pacs: Pacs, registered_db: Path
) -> None:
    run = run_cli("ingest", "dicomweb", pacs.url, "--db", registered_db,
                  "--institution", "TEST-KA-01")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "studies/s" in run.stderr  # the progress bar
    assert_no_planted_value(run.stdout + run.stderr, "the command's output")
    assert_no_planted_value(every_text_in_index(registered_db), "the index tables")
    raw = raw_index_bytes(registered_db)
    assert b"PSEUDO-P000" in raw
    for needle in NEEDLES:
        assert needle.encode() not in raw
    flags = table(registered_db, "SELECT DISTINCT tag FROM phi_flag ORDER BY tag")
    assert [f["tag"] for f in flags] == sorted([*PLANTED, "BurnedInAnnotation"])


def test_an_unreachable_pacs_is_a_clear_error(registered_db: Path) -> None:
    before = registered_db.read_bytes()
    code, _, err = invoke("ingest", "dicomweb", f"http://user:secret@127.0.0.1:{_free_port()}/x",
                          "--db", registered_db, "--institution", "TEST-KA-01")  # fmt: skip
    assert code == 1
    assert "cannot reach the DICOMweb service (ConnectionError)" in " ".join(err.split())
    assert "secret" not in err
    assert registered_db.read_bytes() == before


def test_redacted_url_drops_credentials_and_query() -> None:
    assert redacted("https://u:pw@pacs.example:8042/dicom-web/?token=abc#x") == (
        "https://pacs.example:8042/dicom-web"
    )


# --- finding studies through a capped search, without a server -------------------------------


def _capped_search(dates: dict[str, dt.date], cap: int) -> Search:
    """A QIDO-RS search over `dates` that, like Orthanc, cuts every search to `cap` results."""
    order = sorted(dates)  # the server's own order, not by date

    def search(window: str, limit: int, offset: int) -> list[dict[str, object]]:
        lo, hi = (dt.datetime.strptime(d, "%Y%m%d").date() for d in window.split("-"))
        hits = [u for u in order if lo <= dates[u] <= hi][:cap]
        return [{"0020000D": {"vr": "UI", "Value": [u]}} for u in hits[offset : offset + limit]]

    return search


@settings(max_examples=60, deadline=None)
@given(
    days=st.lists(st.integers(min_value=0, max_value=3000), min_size=0, max_size=60),
    cap=st.integers(min_value=1, max_value=30),
    page=st.integers(min_value=1, max_value=10),
)
def test_find_studies_sees_every_study_whatever_the_cap(
    days: list[int], cap: int, page: int
) -> None:
    start = dt.date(2015, 1, 1)
    dates = {f"1.2.{i}": start + dt.timedelta(days=d) for i, d in enumerate(days)}
    per_day = max((days.count(d) for d in set(days)), default=0)
    found = find_studies(_capped_search(dates, max(cap, per_day)), start, dt.date(2024, 12, 31),
                         page_size=page)  # fmt: skip
    assert found == sorted(dates)


def test_find_studies_limits_the_window_to_the_dates_asked() -> None:
    dates = {"a": dt.date(2020, 1, 1), "b": dt.date(2021, 6, 1), "c": dt.date(2022, 1, 1)}
    search = _capped_search(dates, 1)
    assert find_studies(search, dt.date(2021, 1, 1), dt.date(2022, 1, 1)) == ["b", "c"]
    assert find_studies(search, dt.date(2023, 1, 1), dt.date(2024, 1, 1)) == []
