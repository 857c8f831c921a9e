"""`ingest dicom --engine dask`: the same index as the local path, from a real Dask cluster.

A real LocalCluster of two worker processes (loopback only, small memory) reads generated DICOM
trees and every file pydicom bundles; the index it writes is compared, table by table, with the
one the local process pool writes from the same files (timestamps aside), and the JSON reports
must be equal. Also: the Parquet shards hold outcomes in file order and no path; a bad
scheduler address, a scheduler without workers and a worker without this project are one-line
errors with nothing written; `--scheduler` needs `--engine dask`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import polars as pl
import pydicom
import pytest
from dicom_factory import make_dataset, uid, write_archive, write_dicom
from distributed import LocalCluster
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.db import connect_readonly
from dashboard.ingest.dicom import NO_STUDY_UID, NOT_DICOM, TRUNCATED, Instance, scan_files
from dashboard.ingest.dicom_dask import (
    SHARD_FOLDER,
    SHARD_SCHEMA,
    DaskEngineError,
    DaskScanner,
    _task_error,
    frame_outcomes,
    outcomes_frame,
)
from dashboard.ingest.institutions import ingest_institutions
from dashboard.ingest.package import MANIFEST_FILE, PHI_FILE, STUDIES_FILE, file_sha256
from dashboard.ingest.writer import index_writer
from tests.conftest import REGISTRY_CSV

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dask")]

PYDICOM_DATA = Path(pydicom.data.__file__).parent
runner = CliRunner()
# What must be equal between the two indexes: every table a DICOM ingest writes, without the
# time it was written.
TABLES = {
    "study": "SELECT * EXCLUDE (ingested_at) FROM study ORDER BY institution_id, study_uid",
    "phi_flag": "SELECT * EXCLUDE (scanned_at) FROM phi_flag ORDER BY ALL",
    "ingest_log": "SELECT * EXCLUDE (finished_at) FROM ingest_log ORDER BY ingest_id",
    "quarantine": "SELECT * FROM quarantine ORDER BY ALL",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes, one thread each, 512 MiB each, on loopback: a cluster to point at."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="512MiB",
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as running:
        yield running


def new_db(path: Path) -> Path:
    registry = path.with_suffix(".csv")
    registry.write_text(REGISTRY_CSV, encoding="utf-8")
    with index_writer(path) as con:
        ingest_institutions(con, registry)
    return path


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # an uncaught exception is a failure, not exit status 1
    return result.exit_code, result.stdout, result.stderr


def tables(db: Path) -> dict[str, list[dict[str, Any]]]:
    with connect_readonly(db) as con:
        return {name: con.sql(query).pl().to_dicts() for name, query in TABLES.items()}


def ingest_both(
    tmp_path: Path, roots: list[Path], *dask_args: str | Path
) -> tuple[dict[str, Any], dict[str, Any], Path, Path]:
    """The same roots through the local engine and the Dask engine, into two fresh indexes."""
    reports = []
    dbs = [new_db(tmp_path / "local.duckdb"), new_db(tmp_path / "dask.duckdb")]
    for db, extra in zip(dbs, [("--workers", "2"), ("--engine", "dask", *dask_args)], strict=True):
        code, out, err = invoke(
            "ingest", "dicom", *roots, "--db", db, "--institution", "TEST-KA-01", "--json", *extra
        )
        assert code == 0, err
        assert err == ""  # no progress bar and no cluster log lines with --json
        reports.append(json.loads(out))
    return reports[0], reports[1], dbs[0], dbs[1]


def generated_tree(root: Path) -> str:
    """A realistic archive (a third implicit VR without preamble, planted names) and the cases
    every scan must account for, spread over the walk so that they land in different chunks: a
    text file first, a file without StudyInstanceUID, a truncated file, and last a second file
    holding an instance already seen with another age (the first file read is the one that
    counts, so the study's age tells whether the files were aggregated in walk order)."""
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("not an image", encoding="utf-8")
    write_archive(root / "archive", 90, seed=5, implicit_share=0.34)
    study, series, first = uid(), uid(), uid()
    for i, (sop, age) in enumerate([(first, "045Y"), (uid(), "046Y")]):
        ds = make_dataset(
            study, series_uid=series, sop_uid=sop, PatientAge=age, PatientName="ZZ^PLANTED"
        )
        write_dicom(root / "odd" / f"{i}.dcm", ds, **({"encoding": "implicit"} if i else {}))
    write_dicom(root / "odd" / "no_uid.dcm", make_dataset(None))
    cut = write_dicom(root / "odd" / "cut.dcm", make_dataset(uid(), pixels=True)).read_bytes()
    (root / "odd" / "cut.dcm").write_bytes(cut[:-100])
    write_dicom(root / "zz" / "dup.dcm", make_dataset(study, series_uid=series, sop_uid=first,
                                                       PatientAge="047Y"))  # fmt: skip
    return study


def test_localcluster_from_the_cli_gives_the_local_index(tmp_path: Path) -> None:
    """No --scheduler: the command starts (and closes) its own LocalCluster of processes."""
    study = generated_tree(tmp_path / "tree")
    local, dasked, local_db, dask_db = ingest_both(tmp_path, [tmp_path / "tree"])
    assert dasked == local
    assert local["files_seen"] == 96 == local["files_indexed"] + local["files_skipped"]
    skipped = [(Path(s["path"]).name, s["reason"]) for s in dasked["skipped"]]
    assert skipped == [
        ("notes.txt", NOT_DICOM),
        ("cut.dcm", TRUNCATED),
        ("no_uid.dcm", NO_STUDY_UID),
    ]
    assert local["instances"] == 92  # the second copy of an instance counts once
    assert local["phi_flagged_files"] >= 2
    indexed = tables(dask_db)
    assert indexed == tables(local_db)
    assert [r["age_years"] for r in indexed["study"] if r["study_uid"] == study] == [45.0]
    assert not (tmp_path / SHARD_FOLDER).exists()  # shards removed once loaded


def test_every_bundled_pydicom_file_on_a_running_cluster(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    """--scheduler ADDRESS: the files pydicom bundles (DICOMDIR trees, non-DICOM, truncated)."""
    roots = [*sorted(pydicom.data.get_testdata_files()), PYDICOM_DATA]  # bundled: no download
    local, dasked, local_db, dask_db = ingest_both(
        tmp_path, roots, "--scheduler", cluster.scheduler_address
    )
    assert dasked == local
    assert local["files_seen"] > 150 and local["files_indexed"] > 100
    assert local["files_skipped"] == len(local["skipped"]) > 10
    assert tables(dask_db) == tables(local_db)


def test_shards_hold_outcomes_in_file_order_and_no_path(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    generated_tree(tmp_path / "tree")
    calls: list[tuple[int, int]] = []
    scanner = DaskScanner(
        scheduler=cluster.scheduler_address,
        shard_root=tmp_path / "shards",
        keep_shards=True,
        chunk_size=10,
        read_options={"reader": "pydicom"},  # what --reader pydicom asks the workers for
    )
    result = scanner([tmp_path / "tree"], progress=lambda *call: calls.append(call))
    assert result.to_report() == scan_files([tmp_path / "tree"], reader="pydicom").to_report()
    shards = sorted(scanner.last_shards.glob("*.parquet"))  # type: ignore[union-attr]
    assert scanner.last_shards.parent == tmp_path / "shards"  # type: ignore[union-attr]
    assert len(shards) == 10  # 96 files, 10 a chunk
    frame = pl.concat(pl.read_parquet(s) for s in shards)
    assert dict(frame.schema) == SHARD_SCHEMA and "path" not in frame.columns
    assert frame.height == 96 and frame["reason"].null_count() == result.files_indexed
    assert "ZZ^PLANTED" not in json.dumps(frame.to_dicts())
    assert calls[0] == (0, 96) and calls[-1] == (96, 96)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_outcomes_round_trip_through_a_shard_frame() -> None:
    inst = Instance(
        "1.2.3", None, "1.2.3.4", "P1", "F", "045Y", "20250403", True, "CT", "CHEST",
        "GE", None, "Ward 7 हिन्दी", ("PatientName", "PatientAddress"),
    )  # fmt: skip
    outcomes: list[Instance | str] = [NOT_DICOM, inst, inst._replace(phi_tags=()), TRUNCATED]
    assert list(frame_outcomes(outcomes_frame(outcomes))) == outcomes
    assert list(frame_outcomes(outcomes_frame([]))) == []


def test_a_bad_scheduler_address_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    db = new_db(tmp_path / "x.duckdb")
    before = tables(db)
    tree = tmp_path / "tree"
    write_dicom(tree / "a.dcm", make_dataset(uid()))
    args = ("ingest", "dicom", tree, "--db", db, "--institution", "TEST-KA-01", "--engine", "dask")
    code, out, err = invoke(*args, "--scheduler", "not-an-address::x")
    assert code == 1 and out == ""
    assert "is not a Dask scheduler address" in err and "tcp://host:8786" in err
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code, out, err = invoke(*args, "--scheduler", "tcp://127.0.0.1:1")  # nothing listens
    assert code == 1 and out == ""
    assert err.startswith("error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'")
    assert "Traceback" not in err
    assert tables(db) == before
    code, _, err = invoke("ingest", "dicom", tree, "--db", db, "--scheduler", "tcp://h:8786")
    assert code == 1 and "--scheduler and --keep-shards need --engine dask" in err
    code, _, err = invoke(*args, "--reader", "fastest")  # refused before a cluster starts
    assert code == 1 and "unknown reader 'fastest'" in err


def test_a_cluster_without_workers_or_without_this_project_is_refused(tmp_path: Path) -> None:
    """No worker: refused after the wait. A worker that cannot import `dashboard` (a partner's
    cluster set up without the project) would drop its connection on the first task and leave
    the scan waiting: it is refused before any task."""
    tree = tmp_path / "tree"
    write_dicom(tree / "a.dcm", make_dataset(uid()))
    with LocalCluster(
        n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as empty:  # fmt: skip
        scanner = DaskScanner(scheduler=empty.scheduler_address, worker_timeout=1)
        with pytest.raises(DaskEngineError, match="has no worker"):
            scanner([tree])
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        worker = subprocess.Popen(
            [str(Path(sys.executable).with_name("dask")), "worker", empty.scheduler_address,
             "--nthreads", "1", "--no-dashboard"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            scanner.worker_timeout = 30
            with pytest.raises(DaskEngineError, match="workers cannot import 'dashboard'"):
                scanner([tree])
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert not list((tmp_path).glob("**/*.parquet"))


def test_worker_side_failures_say_what_to_check() -> None:
    missing = ModuleNotFoundError("No module named 'dashboard'", name="dashboard")
    assert "cannot import 'dashboard'" in str(_task_error(missing))
    assert isinstance(_task_error(OSError("disk full")), DaskEngineError)


# --- scan: the federated package --------------------------------------------------------------


def test_scan_on_a_cluster_writes_the_local_package_byte_for_byte(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    """`scan --engine dask` runs the same scanner as `ingest dicom --engine dask`: the package
    holds the same Parquet rows; polars writes no timestamp into Parquet, so the same rows are
    the same bytes and the manifests differ in created_at only. Both load into the same index.
    """
    planted = generated_tree(tmp_path / "tree")
    archive = (p for p in (tmp_path / "tree" / "archive").rglob("*") if p.is_file())
    studies = {pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID for p in archive}
    scan = ("scan", tmp_path / "tree", "--institution", "TEST-KA-01", "--json")
    manifests, dbs = {}, {}
    for engine, extra in (
        ("local", ("--workers", "2")),
        ("dask", ("--engine", "dask", "--scheduler", cluster.scheduler_address, "--keep-shards")),
    ):
        package = tmp_path / engine / "package"  # one name: the ingest log labels a package by it
        code, out, err = invoke(*scan, "--out", package, *extra)
        assert code == 0, err
        if engine == "local":
            assert err == ""
        else:  # the cluster read the files: its shards, by default beside the package
            (line,) = err.splitlines()  # one line, however long the path: it can be copied
            kept = Path(line.removeprefix("Parquet shards kept in "))
            assert kept.parent == tmp_path / "dask" / SHARD_FOLDER
            assert pl.read_parquet(kept / "*.parquet").height == 96  # one row a file
        manifests[engine] = json.loads(out)
        on_disk = json.loads((package / MANIFEST_FILE).read_text(encoding="utf-8"))
        assert on_disk == manifests[engine]
        for name, recorded in on_disk["files"].items():
            assert recorded["sha256"] == file_sha256(package / name)
        dbs[engine] = new_db(tmp_path / f"{engine}.duckdb")
        code, out, err = invoke("ingest", "package", package, "--db", dbs[engine], "--json")
        assert code == 0, err
        assert json.loads(out)["inserted"] == manifests[engine]["scan"]["studies"]
    for name in (STUDIES_FILE, PHI_FILE):
        local, dasked = (pl.read_parquet(tmp_path / e / "package" / name) for e in manifests)
        assert_frame_equal(dasked, local)  # same rows in the same order, same types
        if name == STUDIES_FILE:  # the archive's studies (read here by pydicom) and the odd one
            assert sorted(local["study_uid"]) == sorted(studies | {planted})
    local, dasked = manifests["local"], manifests["dask"]
    assert local["scan"]["files_seen"] == 96
    assert local["files"][STUDIES_FILE]["rows"] == local["scan"]["studies"] == len(studies) + 1
    assert local["files"][PHI_FILE]["rows"] >= 1  # the planted PatientName
    assert {k: v for k, v in dasked.items() if k != "created_at"} == {
        k: v for k, v in local.items() if k != "created_at"
    }  # the scan summary, and each file's rows, bytes and SHA-256
    assert tables(dbs["dask"]) == tables(dbs["local"])


def test_scan_refuses_dask_options_as_ingest_dicom_does(tmp_path: Path) -> None:
    """The same option checks as `ingest dicom`, before any cluster starts; no package."""
    tree = tmp_path / "tree"
    write_dicom(tree / "a.dcm", make_dataset(uid()))
    scan = ("scan", tree, "--out", tmp_path / "package", "--institution", "TEST-KA-01")
    for extra, message in (
        (("--scheduler", "tcp://h:8786"), "--scheduler and --keep-shards need --engine dask"),
        (("--keep-shards",), "--scheduler and --keep-shards need --engine dask"),
        (("--engine", "spark"), "unknown engine 'spark'; use local or dask"),
        (
            ("--engine", "dask", "--scheduler", "not-an-address::x"),
            "is not a Dask scheduler address",
        ),
    ):
        code, out, err = invoke(*scan, *extra)
        assert (code, out) == (1, ""), extra
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # no package, no shard folder
