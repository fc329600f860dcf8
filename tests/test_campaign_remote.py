"""Logs given as URLs (bench.remote): a real S3 server (moto) and a real HTTP server on 127.0.0.1.

Each log is judged from the object store by the process that judges it (a local process, a Dask
worker); the verdicts must be the ones the same logs get from local paths.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.campaign import discover, run_campaign
from bench.errors import HarnessError, InputError
from bench.evaluate import evaluate_path
from bench.logfiles import write_frames
from bench.remote import RemoteFile, failure, filesystem, open_file
from bench.stream import FrameBatches
from bench.summary import exit_code
from tests.conftest import DBC_DIR
from tests.test_campaign import _quiet, _verdicts
from tests.test_evaluate import _plan_text, _restbus, make_run_dir

ROOT = Path(__file__).resolve().parent.parent
s3fs = pytest.importorskip("s3fs", reason="s3:// logs need s3fs (pip install 'bench[s3]')")
moto_server = pytest.importorskip("moto.server", reason="the S3 test server needs moto[server]")
BUCKET = "bench-logs"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",  # an unreachable endpoint fails at once, not after retries
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, dbcs) -> Path:
    """logs/ as tests/test_campaign.py's: three run directories, a Parquet file (several row
    groups), a corrupt one, an ASC log, a text .log, a hidden directory; plan.yaml beside."""
    root = tmp_path_factory.mktemp("remote")
    logs = root / "logs"
    make_run_dir(logs / "ok", dbcs)
    make_run_dir(logs / "hot", dbcs, hot=True)
    make_run_dir(logs / "abort", dbcs, abort=True)
    files = logs / "drives" / "2026"
    files.mkdir(parents=True)
    table = _restbus(dbcs, duration=4.0)
    pq.write_table(table, files / "a.parquet", row_group_size=100)
    write_frames(table, files / "b.asc")
    (files / "corrupt.parquet").write_bytes(b"PAR1 truncated")
    (files / "notes.log").write_text("build started\n")
    (logs / ".cache").mkdir()
    pq.write_table(_restbus(dbcs, duration=1.0), logs / ".cache" / "hidden.parquet")
    (root / "plan.yaml").write_text(_plan_text(DBC_DIR))
    return root


@pytest.fixture(scope="module")
def s3(tree: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1 holding tree's logs/ under s3://bench-logs/logs/; yields
    the environment that reaches it (AWS_ENDPOINT_URL and test credentials), set in this
    process for the module (Dask workers started meanwhile inherit it)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        fs.put(str(tree / "logs"), f"{BUCKET}/logs", recursive=True)
        for marker in ("logs/", "logs/ok/20260110-080000-fixture/frames/"):
            # empty "directory" objects, as S3 consoles make them: not logs, not files of a log
            fs.call_s3("put_object", Bucket=BUCKET, Key=marker, Body=b"")
        fs.invalidate_cache()
        try:
            yield env
        finally:
            server.stop()


@pytest.fixture(scope="module")
def local(tree: Path, s3):
    """The same logs judged from local paths (one process): the truth the URLs must give."""
    return run_campaign([tree / "logs"], tree / "plan.yaml", out_dir=tree / "campaign-local",
                        jobs=1, progress=_quiet(6))  # fmt: skip


def _bench(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT,
    )  # fmt: skip


def _by_url(data: dict) -> dict:
    return {log["label"]: log for log in data["logs"]}


# -- discovery -------------------------------------------------------------------------------------


def test_discover_a_prefix_as_a_local_folder(tree: Path, s3) -> None:
    remote = discover([f"s3://{BUCKET}/logs/"])
    here = discover([tree / "logs"])
    assert [e.label for e in remote.logs] == [e.label for e in here.logs]
    assert all(str(e.path).startswith(f"s3://{BUCKET}/logs/") for e in remote.logs)
    assert "hidden" not in " ".join(str(e.path) for e in remote.logs)
    assert [s.split(": ", 1)[1] for s in remote.skipped] == [
        s.split(": ", 1)[1] for s in here.skipped
    ]  # notes.log: not a candump log
    for url in ("ok/20260110-080000-fixture", "ok/20260110-080000-fixture/frames/"):
        run = discover([f"s3://{BUCKET}/logs/{url}"])  # a run's frames/ is its run
        assert [(e.path, e.label) for e in run.logs] == [
            (f"s3://{BUCKET}/logs/ok/20260110-080000-fixture", "20260110-080000-fixture")
        ]


def test_discover_errors_name_the_url(s3) -> None:
    with pytest.raises(InputError, match=rf"s3://{BUCKET}/nothing/: no such object"):
        discover([f"s3://{BUCKET}/nothing/"])
    with pytest.raises(InputError, match="s3://no-such-bucket/x/: no such object"):
        discover(["s3://no-such-bucket/x/"])
    # named with a log's suffix: not listed here, its worker finds out (the error row)
    assert [e.label for e in discover([f"s3://{BUCKET}/gone.blf"]).logs] == ["gone.blf"]


# -- reading ---------------------------------------------------------------------------------------


def test_a_remote_parquet_file_streams_the_same_batches(tree: Path, s3, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_EVAL_BATCH", "150")
    remote = open_file(f"s3://{BUCKET}/logs/drives/2026/a.parquet")
    assert isinstance(remote, RemoteFile) and remote.size > 0
    path = tree / "logs" / "drives" / "2026" / "a.parquet"
    there, here = FrameBatches(remote, 150), FrameBatches(path, 150)
    assert there.span() == here.span() is not None
    remote_batches, local_batches = list(there), list(here)
    assert len(remote_batches) > 1  # row group by row group, not the whole file at once
    assert [b.num_rows for b in remote_batches] == [b.num_rows for b in local_batches]
    assert pa.concat_tables(remote_batches).equals(pa.concat_tables(local_batches))


def test_a_single_url_log_judges_as_its_local_copy(tree: Path, s3, tmp_path: Path) -> None:
    plan = tree / "plan.yaml"
    for name in ("a.parquet", "b.asc"):
        url = f"s3://{BUCKET}/logs/drives/2026/{name}"
        there, target = evaluate_path(url, plan, out_dir=tmp_path / f"url-{name}")
        here, _ = evaluate_path(tree / "logs/drives/2026" / name, plan, out_dir=tmp_path / name)
        assert there.model_dump() == here.model_dump()
        # the run directory made from a URL re-evaluates on its own, from local files
        again, _ = evaluate_path(target, plan)
        assert [c.observed for c in again.checks] == [c.observed for c in here.checks]


# -- campaigns -------------------------------------------------------------------------------------


def test_campaign_over_s3_with_two_jobs(tree: Path, s3, local, tmp_path: Path) -> None:
    out = tmp_path / "campaign"
    done = _bench("evaluate", f"s3://{BUCKET}/logs/", "--plan", str(tree / "plan.yaml"),
                  "--out", str(out), "--jobs", "2", env=s3)  # fmt: skip
    assert done.returncode == local.exit_code == 3, done.stderr
    data = json.loads((out / "campaign.json").read_text())
    assert _verdicts(data) == _verdicts(local.data)
    logs = _by_url(data)
    assert logs["drives__2026__a.parquet"]["log"] == f"s3://{BUCKET}/logs/drives/2026/a.parquet"
    assert logs["drives__2026__corrupt.parquet"]["error"].startswith(
        f"s3://{BUCKET}/logs/drives/2026/corrupt.parquet: not a readable Parquet file"
    )
    assert len({log["worker"] for log in data["logs"]}) == 2  # two processes read the store
    assert (out / "ok__20260110-080000-fixture" / "frames" / "part-00000.parquet").is_file()


def test_campaign_over_s3_on_a_local_cluster(tree: Path, s3, local) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:  # fmt: skip
        outcome = run_campaign(
            [f"s3://{BUCKET}/logs/"], tree / "plan.yaml", out_dir=tree / "campaign-dask-s3",
            scheduler=cluster.scheduler_address, progress=_quiet(6),
        )  # fmt: skip
        worker_pids = {w.pid for w in cluster.workers.values()}
    assert _verdicts(outcome.data) == _verdicts(local.data)
    ran_on = {int(r.worker.rsplit(":", 1)[1]) for r in outcome.results}
    assert ran_on <= worker_pids and os.getpid() not in ran_on


def test_a_missing_object_is_its_error_row(tree: Path, s3, local, tmp_path: Path) -> None:
    good = f"s3://{BUCKET}/logs/drives/2026/a.parquet"
    gone = f"s3://{BUCKET}/logs/drives/2026/gone.parquet"
    outcome = run_campaign([good, gone], tree / "plan.yaml", out_dir=tmp_path / "c", jobs=1,
                           progress=_quiet(2))  # fmt: skip
    rows = _by_url(outcome.data)
    assert rows["gone.parquet"]["verdict"] == "error"
    assert rows["gone.parquet"]["error"] == f"{gone}: no such object"
    assert rows["a.parquet"]["verdict"] == _by_url(local.data)["drives__2026__a.parquet"]["verdict"]
    assert outcome.exit_code == 2


def test_an_unreachable_store_is_an_error_row_exit_3(tree: Path, s3, tmp_path: Path) -> None:
    env = {**s3, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens on port 9
    url = f"s3://{BUCKET}/logs/drives/2026/a.parquet"
    done = _bench("evaluate", url, url.replace("a.parquet", "b.asc"), "--plan",
                  str(tree / "plan.yaml"), "--out", str(tmp_path / "c"), "--jobs", "1",
                  env=env)  # fmt: skip
    assert done.returncode == 3, done.stderr
    data = json.loads((tmp_path / "c" / "campaign.json").read_text())
    errors = [log["error"] for log in data["logs"]]
    assert errors[0].startswith(f"{url}: cannot reach the object store (")
    assert len(errors) == 2 and all("Traceback" not in e for e in errors)


# -- single logs on the command line ---------------------------------------------------------------


def test_cli_single_url_errors_are_one_line(tree: Path, s3, local, tmp_path: Path) -> None:
    plan = str(tree / "plan.yaml")
    gone = _bench("evaluate", f"s3://{BUCKET}/nope.parquet", "--plan", plan, env=s3)
    assert gone.returncode == 2
    assert gone.stderr.strip().splitlines() == [
        f"bench: error: s3://{BUCKET}/nope.parquet: no such object"
    ]
    nowhere = str(tmp_path / "none")  # no keys in the environment, no files, no instance role
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_ENDPOINT_URL": s3["AWS_ENDPOINT_URL"],
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_CONFIG_FILE": nowhere,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    anonymous = subprocess.run(
        [sys.executable, "-m", "bench.cli", "evaluate", f"s3://{BUCKET}/logs/drives/2026/a.parquet",
         "--plan", plan], capture_output=True, text=True, timeout=120,
        env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    )  # fmt: skip
    assert anonymous.returncode == 2, anonymous.stderr
    (line,) = anonymous.stderr.strip().splitlines()
    assert "no credentials" in line and f"s3://{BUCKET}/logs/drives/2026/a.parquet" in line
    ok = _bench("evaluate", f"s3://{BUCKET}/logs/drives/2026/a.parquet", "--plan", plan,
                "--out", str(tmp_path / "one"), env=s3)  # fmt: skip
    verdict = _by_url(local.data)["drives__2026__a.parquet"]["verdict"]
    assert ok.returncode == exit_code(verdict), ok.stderr  # as from the local path
    assert f"verdict: {verdict.upper()}" in ok.stdout
    assert (tmp_path / "one" / "summary.json").is_file()
    # a run directory's URL is one log too: judged into --out, not a campaign
    run = _bench("evaluate", f"s3://{BUCKET}/logs/hot/20260110-080000-fixture", "--plan", plan,
                 "--out", str(tmp_path / "run"), env=s3)  # fmt: skip
    assert run.returncode == 1, run.stderr  # hot: a check failed, as from its local path
    assert "campaign" not in run.stdout and (tmp_path / "run" / "summary.json").is_file()
    assert (tmp_path / "run" / "frames" / "part-00001.parquet").is_file()


def test_a_scheme_without_its_backend_names_the_package() -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(InputError, match=r"gcs://b/x\.parquet: reading gcs:// needs the package "
                       r"gcsfs: pip install gcsfs"):  # fmt: skip
        filesystem("gcs://b/x.parquet")
    with pytest.raises(InputError, match=r"nosuch://b/x\.parquet: not a URL bench can read"):
        filesystem("nosuch://b/x.parquet")


def test_failures_map_to_exit_codes() -> None:
    assert isinstance(failure("s3://b/x", FileNotFoundError("b/x")), InputError)
    assert isinstance(failure("s3://b/x", PermissionError("denied")), InputError)
    assert isinstance(failure("s3://b/x", ConnectionRefusedError("refused")), HarnessError)


# -- http(s) ---------------------------------------------------------------------------------------


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """http.server with byte ranges (``Range: bytes=a-b``), as every real web server and object
    store serves them: a log is read in parts, never whole."""

    def send_head(self):
        header = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not header or not path.is_file():
            return super().send_head()
        start_text, _, end_text = header.removeprefix("bytes=").partition("-")
        size = path.stat().st_size
        start = int(start_text) if start_text else max(0, size - int(end_text))
        end = min(int(end_text), size - 1) if end_text and start_text else size - 1
        if start >= size:
            self.send_error(416)
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return _Limited(handle, end - start + 1)

    def log_message(self, *args) -> None:
        pass


class _Limited:
    def __init__(self, handle, length: int) -> None:
        self.handle, self.left = handle, length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.handle.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


@contextlib.contextmanager
def _http_server(directory: Path) -> Iterator[str]:
    def handler(*args, **kwargs):
        return _RangeHandler(*args, directory=str(directory), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_urls(tree: Path, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp", reason="fsspec's http(s):// needs aiohttp")
    plan = tree / "plan.yaml"
    with _http_server(tree / "logs") as base:
        there, _ = evaluate_path(f"{base}/drives/2026/a.parquet", plan, out_dir=tmp_path / "a")
        asc, _ = evaluate_path(f"{base}/drives/2026/b.asc", plan, out_dir=tmp_path / "b")
        with pytest.raises(InputError, match=rf"{base}/drives/nope.parquet: no such object"):
            evaluate_path(f"{base}/drives/nope.parquet", plan, out_dir=tmp_path / "c")
    here, _ = evaluate_path(tree / "logs/drives/2026/a.parquet", plan, out_dir=tmp_path / "d")
    assert there.model_dump() == here.model_dump()
    assert [c.verdict for c in asc.checks] == [c.verdict for c in here.checks]
    assert not (tmp_path / "c").exists()  # nothing left of a log that could not be read


def test_file_urls(tree: Path, tmp_path: Path) -> None:
    url = (tree / "logs" / "drives" / "2026" / "a.parquet").as_uri()
    there, _ = evaluate_path(url, tree / "plan.yaml", out_dir=tmp_path / "a")
    assert there.frames == pq.read_metadata(url.removeprefix("file://")).num_rows
    shutil.rmtree(tmp_path / "a")


def test_an_unreachable_web_server_is_not_a_missing_object(tree: Path, tmp_path: Path) -> None:
    """fsspec's http raises FileNotFoundError *from* the connection error: still exit 3."""
    pytest.importorskip("aiohttp", reason="fsspec's http(s):// needs aiohttp")
    url = "http://127.0.0.1:9/drives/a.parquet"  # nothing listens on port 9
    with pytest.raises(HarnessError, match=rf"^{url}: cannot reach the object store \("):
        evaluate_path(url, tree / "plan.yaml", out_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    try:
        raise FileNotFoundError("b/x") from ConnectionRefusedError("refused")
    except FileNotFoundError as exc:
        assert isinstance(failure("s3://b/x", exc), HarnessError)
    assert isinstance(failure("s3://b/x", FileNotFoundError("b/x")), InputError)
