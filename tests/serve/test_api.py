"""`echotemporal serve`'s API through FastAPI's test client: every endpoint and error code, expiry,
token, a worker killed mid-job; results checked against the library run in this process."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
pytest.importorskip("httpx")

from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from echotemporal.cli import main  # noqa: E402
from echotemporal.io import read_sequence, write_sequence  # noqa: E402
from echotemporal.phantoms import generate_sequence  # noqa: E402
from echotemporal.pipeline import smooth_file  # noqa: E402
from echotemporal.measure.check import check_file  # noqa: E402
from echotemporal.serve import MAX_STATUS_WAIT_S, RESULT_FILES, ServeSettings, create_app  # noqa: E402

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small phantom sequences (one .nii.gz, one .mhd pair), a big one, a non-label map, garbage."""
    root = tmp_path_factory.mktemp("serve-inputs")
    small = generate_sequence(3, n_frames=10, image_shape=(160, 128))
    big = generate_sequence(4)  # CAMUS size
    # Several beats at CAMUS size: a job long enough (about 1 s) to kill its worker in; a one-cycle
    # CAMUS-size sequence is corrected in about 0.2 s, within the test's wait before the kill.
    long = generate_sequence(4, n_frames=120)
    out = {
        "small": write_sequence(root / "small.nii.gz", small.labels, spacing_mm=small.spacing_mm),
        "mhd": write_sequence(root / "pair.mhd", small.labels, spacing_mm=small.spacing_mm),
        "big": write_sequence(root / "big.nii.gz", big.labels, spacing_mm=big.spacing_mm),
        "long": write_sequence(root / "long.nii.gz", long.labels, spacing_mm=long.spacing_mm),
    }
    bmode = (small.labels * 60 + 7).astype(np.uint8)  # values outside {0, 1, 2, 3}
    out["bmode"] = root / "bmode.nii.gz"  # written without write_sequence, which refuses non-labels
    sitk.WriteImage(sitk.GetImageFromArray(bmode), str(out["bmode"]))
    out["garbage"] = root / "garbage.nii.gz"
    out["garbage"].write_bytes(b"\x1f\x8b not really a gzip stream" * 20)
    out["cfg"] = root / "Info_4CH.cfg"
    out["cfg"].write_text(f"ED: {small.ed_frame + 1}\nES: {small.es_frame + 1}\nNbFrame: 10\n")
    return out


@pytest.fixture(scope="module")
def app():
    return create_app(ServeSettings(workers=1, max_queue=4, max_upload_mb=1.0, token=TOKEN, results_ttl_s=600))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, headers=AUTH) as c:
        yield c


def _wait(client: TestClient, url: str, timeout: float = 60.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = client.get(url).json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {url} not finished in {timeout} s")


def _submit(client: TestClient, path: Path, **data: str) -> dict:
    r = client.post("/v1/jobs", files={"sequence": (path.name, path.read_bytes())}, data=data)
    assert r.status_code == 202, r.text
    return r.json()


def _assert_error(r, status: int, contains: str = "") -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "hint"}
    assert contains in body["error"]
    return body


def test_health_version_docs(client: TestClient) -> None:
    assert client.get("/healthz", headers={"Authorization": ""}).json()["status"] == "ok"
    version = client.get("/v1/version").json()
    from echotemporal import __version__
    from echotemporal.model.registry import load_model

    model = load_model()
    assert version["package"] == __version__
    assert version["model_sha256"] == model.sha256 and version["backend"] == model.backend
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/check", "/v1/version", "/healthz"} <= set(paths)
    # The documented methods are the ones a job accepts (lcc-gaussian was missing from the schema).
    from echotemporal.core.config import METHODS

    form = paths["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["method"]["enum"] == list(METHODS)


def test_job_results_match_the_library(client: TestClient, files: dict[str, Path], tmp_path: Path) -> None:
    job = _submit(client, files["small"])
    assert len(job["id"]) >= 22 and job["status_url"].endswith(f"/v1/jobs/{job['id']}")
    status = _wait(client, job["status_url"])
    assert status["status"] == "done", status
    local = smooth_file(files["small"], tmp_path / "local.nii.gz")
    served = client.get(status["results"]["labels.nii.gz"])
    assert served.status_code == 200
    (tmp_path / "served.nii.gz").write_bytes(served.content)
    np.testing.assert_array_equal(read_sequence(tmp_path / "served.nii.gz").labels, local.labels)
    summary = client.get(status["results"]["summary.json"]).json()
    assert summary["ef_percent_after"] == pytest.approx(local.summary["ef_percent_after"])
    assert summary["input"] == "small.nii.gz" and str(tmp_path) not in json.dumps(summary)
    assert status["summary"]["inconsistent_frames_before"] == local.summary["inconsistent_frames_before"]
    csv = client.get(status["results"]["frames.csv"]).text.splitlines()
    assert csv[0].startswith("frame,") and len(csv) == 11
    frames = client.get(status["results"]["frames.json"]).json()
    np.testing.assert_allclose(frames["lv_volume_ml_after"], local.columns["lv_volume_ml_after"])
    png = client.get(status["results"]["volume.png"])
    assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    contours = client.get(status["results"]["contours.json"]).json()
    assert contours["shape"] == [160, 128] and len(contours["frames"]) == 10
    lv = np.array(contours["frames"][0]["after"]["1"][0]).reshape(-1, 2)  # x, y of the LV outline
    rows, cols = np.nonzero(local.labels[0] == 1)
    assert abs(lv[:, 0].mean() - cols.mean()) < 3 and abs(lv[:, 1].mean() - rows.mean()) < 3
    assert set(status["results"]) == set(RESULT_FILES)
    _assert_error(client.get(f"/v1/jobs/{job['id']}/secrets.txt"), 404, "no result")


def test_mhd_pair_zip_cfg_and_fields(client: TestClient, files: dict[str, Path]) -> None:
    mhd, raw = files["mhd"], files["mhd"].with_suffix(".raw")
    r = client.post("/v1/jobs", files=[("sequence", (mhd.name, mhd.read_bytes())), ("sequence", (raw.name, raw.read_bytes()))],
                    data={"method": "gaussian"})
    assert r.status_code == 202, r.text
    status = _wait(client, r.json()["status_url"])
    assert status["status"] == "done" and status["summary"]["method"] == "gaussian"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.write(mhd, f"case/{mhd.name}")
        zf.write(raw, f"case/{raw.name}")
    r = client.post("/v1/jobs", files={"sequence": ("case.zip", buffer.getvalue()), "info": ("Info_4CH.cfg", files["cfg"].read_bytes())},
                    data={"method": "none", "es": "6", "fps": "25"})
    status = _wait(client, r.json()["status_url"])
    assert status["status"] == "done", status
    cfg_ed = int(files["cfg"].read_text().split()[1]) - 1
    assert status["summary"]["ed_frame"] == cfg_ed and status["summary"]["es_frame"] == 6  # es field over the cfg
    assert status["summary"]["ed_es_source"] == "cfg" and status["summary"]["frame_rate_hz"] == 25
    frames = client.get(status["results"]["frames.json"]).json()
    assert frames["time_s"][5] == pytest.approx(5 / 25)


def test_check_is_the_cli_report(client: TestClient, files: dict[str, Path]) -> None:
    r = client.post("/v1/check", files={"sequence": ("small.nii.gz", files["small"].read_bytes()),
                                        "info": ("Info_4CH.cfg", files["cfg"].read_bytes())})
    assert r.status_code == 200, r.text
    served, local = r.json(), check_file(files["small"], files["cfg"])
    assert served["file"] == "small.nii.gz" and served["info_file"] == "Info_4CH.cfg"
    for key in ("flagged_frames", "invalid_frames", "lv_volumes_ml", "ed_frame", "es_frame", "ef_percent", "gls_percent"):
        assert served[key] == local[key], key


@pytest.mark.parametrize(("which", "status"), [("garbage", 400), ("bmode", 422)])
def test_bad_input_gets_the_cli_message(client: TestClient, files: dict[str, Path], which: str, status: int) -> None:
    path = files[which]
    cli = CliRunner().invoke(main, ["check", str(path)])
    assert cli.exit_code != 0
    cli_line = cli.output.strip().removeprefix("Error: ").replace(f"{path}", path.name)
    for url in ("/v1/jobs", "/v1/check"):
        body = _assert_error(client.post(url, files={"sequence": (path.name, path.read_bytes())}), status)
        assert "; ".join(filter(None, (body["error"], body["hint"]))) == cli_line


def test_request_errors(client: TestClient, files: dict[str, Path], app) -> None:
    small = files["small"].read_bytes()
    _assert_error(client.post("/v1/jobs", data={"method": "gaussian"}, files={"info": ("a.cfg", b"ED: 1\n")}), 422, "no 'sequence'")
    _assert_error(client.post("/v1/jobs", files={"sequence": ("s.nii.gz", small)}, data={"method": "magic"}), 422, "method='magic'")
    _assert_error(client.post("/v1/jobs", files={"sequence": ("s.nii.gz", small)}, data={"ed": "40"}), 422, "ed=40")
    _assert_error(client.post("/v1/jobs", files={"sequence": ("s.nii.gz", small), "extra": ("x", b"1")}), 422, "unexpected form field")
    _assert_error(client.post("/v1/jobs", content=b"not multipart", headers={"Content-Type": "text/plain"}), 400, "not multipart")
    cut = b"--XyZ\r\nContent-Disposition: form-data; name=\"sequence\"; filename=\"a.nii.gz\"\r\n\r\n" + small[:100]
    _assert_error(client.post("/v1/jobs", content=cut, headers={"Content-Type": "multipart/form-data; boundary=XyZ"}), 400, "malformed")
    _assert_error(client.get("/v1/jobs/not-a-job"), 404, "no job")
    _assert_error(client.delete("/v1/jobs/not-a-job"), 404, "no job")
    _assert_error(client.get("/no/such/page"), 404)
    _assert_error(client.put("/v1/jobs"), 405)
    assert client.get("/v1/jobs").status_code == 405  # no listing


def test_oversized_upload_is_refused_unread(client: TestClient, app) -> None:
    kept = set(app.state.store.root.iterdir())  # the folders of earlier, unexpired jobs
    body = os.urandom(3 << 20)
    _assert_error(client.post("/v1/jobs", files={"sequence": ("big.nii.gz", body)}), 413, "over the server's limit")

    def chunks():  # no Content-Length: the limit is counted while streaming
        yield b"--B\r\nContent-Disposition: form-data; name=\"sequence\"; filename=\"a.nii.gz\"\r\n\r\n"
        for _ in range(40):
            yield os.urandom(1 << 16)

    _assert_error(client.post("/v1/jobs", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=B"}), 413, "larger than")
    assert set(app.state.store.root.iterdir()) == kept  # nothing kept of refused uploads


def test_token_required(app, files: dict[str, Path]) -> None:
    bare = TestClient(app)  # no lifespan needed: the token is checked first
    _assert_error(bare.get("/v1/version"), 401, "bearer token")
    _assert_error(bare.post("/v1/jobs", files={"sequence": ("s.nii.gz", b"x")}), 401)
    r = bare.get("/v1/version", headers={"Authorization": "Bearer wrong-token!"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert bare.get("/healthz").status_code == 200 and bare.get("/").status_code == 200


def test_queue_full_is_503(client: TestClient, app, files: dict[str, Path]) -> None:
    store = app.state.store
    saved, store.max_queue = store.max_queue, 0
    try:
        r = client.post("/v1/jobs", files={"sequence": ("small.nii.gz", files["small"].read_bytes())})
        _assert_error(r, 503, "queue is full")
        assert int(r.headers["retry-after"]) >= 1
        _assert_error(client.post("/v1/check", files={"sequence": ("small.nii.gz", b"x")}), 503)
    finally:
        store.max_queue = saved


def test_delete_and_expiry(client: TestClient, app, files: dict[str, Path]) -> None:
    store = app.state.store
    job = _submit(client, files["small"], method="none")
    assert _wait(client, job["status_url"])["status"] == "done"
    folder = store.get(job["id"]).folder
    assert folder.is_dir()
    assert not list(folder.rglob("*.npy"))  # the decoded copy of the upload went with the job's start
    assert client.delete(f"/v1/jobs/{job['id']}").json()["status"] == "deleted"
    assert not folder.exists()
    _assert_error(client.get(job["status_url"]), 404)

    job = _submit(client, files["small"], method="none")
    status = _wait(client, job["status_url"])
    folder = store.get(job["id"]).folder
    saved, store.ttl_s = store.ttl_s, 0.3
    try:
        assert client.get(status["results"]["summary.json"]).status_code == 200
        time.sleep(1.6)  # the sweeper runs at least once a second
        _assert_error(client.get(status["results"]["summary.json"]), 404)
        assert not folder.exists()
    finally:
        store.ttl_s = saved


def test_status_long_poll(client: TestClient, files: dict[str, Path]) -> None:
    # One worker: the last CAMUS-size job waits for the three before it (one alone can end within the
    # half-second wait on a quiet machine).
    ahead = [_submit(client, files["big"]) for _ in range(3)]
    second = _submit(client, files["big"])
    start = time.monotonic()
    held = client.get(second["status_url"], params={"wait": 0.5}).json()
    assert 0.5 <= time.monotonic() - start < 5.0  # held for the whole wait, then the current status
    assert held["status"] in ("queued", "running")

    start = time.monotonic()
    done = client.get(second["status_url"], params={"wait": 30}).json()
    answered = time.time()
    assert done["status"] == "done" and time.monotonic() - start < 29.0
    assert answered - done["finished"] < 0.5  # answered as the job ended, not when the wait ran out
    quick = time.monotonic()
    assert client.get(second["status_url"], params={"wait": 30}).json()["status"] == "done"
    assert time.monotonic() - quick < 1.0  # a finished job is not held
    assert all(client.get(job["status_url"]).json()["status"] == "done" for job in ahead)
    for job in (*ahead, second):
        client.delete(job["status_url"])
    _assert_error(client.get(second["status_url"], params={"wait": MAX_STATUS_WAIT_S + 1}), 422)
    _assert_error(client.get(second["status_url"], params={"wait": -1}), 422)


def test_long_poll_of_a_deleted_job_ends_at_once(client: TestClient, files: dict[str, Path]) -> None:
    busy = [_submit(client, files["big"]) for _ in range(2)]  # the small job stays queued past the 0.3 s
    queued = _submit(client, files["small"])
    answer: list = []
    start = time.monotonic()
    poller = threading.Thread(target=lambda: answer.append(client.get(queued["status_url"], params={"wait": 20})))
    poller.start()
    time.sleep(0.3)
    assert client.delete(queued["status_url"]).json()["status"] == "deleted"
    poller.join(timeout=25)
    _assert_error(answer[0], 404, "no job")
    assert time.monotonic() - start < 10.0
    for job in busy:
        _wait(client, job["status_url"])
        client.delete(job["status_url"])


def test_killed_worker_fails_its_job_only(client: TestClient, app, files: dict[str, Path]) -> None:
    pool = app.state.pool
    job = _submit(client, files["long"])
    end = time.monotonic() + 30
    while client.get(job["status_url"]).json()["status"] != "running" and time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(0.2)
    (pid,) = pool.worker_pids()
    os.kill(pid, signal.SIGKILL)
    status = _wait(client, job["status_url"])
    assert status["status"] == "failed" and status["error"]["status"] == 500
    assert "worker process ended" in status["error"]["error"]
    _assert_error(client.get(f"{job['status_url']}/labels.nii.gz"), 409, "is failed")
    assert client.get("/healthz").json()["status"] == "ok"
    assert pool.worker_pids() != [pid]
    again = _wait(client, _submit(client, files["small"])["status_url"])  # the replaced worker serves
    assert again["status"] == "done"


def test_serve_command_refuses_an_empty_token_file(tmp_path: Path) -> None:
    empty = tmp_path / "token.txt"
    empty.write_text("\n")
    result = CliRunner().invoke(main, ["serve", "--token-file", str(empty)])
    assert result.exit_code != 0 and "empty token file" in result.output


def test_an_upload_the_cli_gates_refuse_is_refused_by_the_post(client: TestClient, files: dict[str, Path], tmp_path: Path) -> None:
    small = files["small"]
    empty = write_sequence(tmp_path / "empty.nii.gz", np.zeros((6, 40, 30), np.uint8), spacing_mm=(0.3, 0.3))
    body = _assert_error(client.post("/v1/jobs", files={"sequence": ("empty.nii.gz", empty.read_bytes())}), 400,
                         "empty.nii.gz: no LV (1) or myocardium (2) in any frame")
    assert "apical view" in body["hint"]
    far = tmp_path / "Info_4CH.cfg"
    far.write_text("ED: 1\nES: 44\n")
    body = _assert_error(client.post("/v1/jobs", files={"sequence": ("small.nii.gz", small.read_bytes()),
                                                        "info": ("Info_4CH.cfg", far.read_bytes())}), 400, "ES: 44 is outside")
    assert "--" not in body["hint"]


def test_error_and_hint_split_at_the_first_semicolon_outside_parentheses() -> None:
    from echotemporal.serve.errors import _split_hint

    cut = "a.nii.gz: truncated or corrupt (the gzip stream is cut short; its header announces 9 bytes)"
    assert _split_hint(f"{cut}; re-export or re-download it") == (cut, "re-export or re-download it")
    assert _split_hint("x.nii.gz: bad; fix it; or this") == ("x.nii.gz: bad", "fix it; or this")
    assert _split_hint("no hint here") == ("no hint here", "")


def test_hints_name_the_request_fields_not_the_command_line_options() -> None:
    from echotemporal.core.errors import InputFileError
    from echotemporal.serve.errors import from_library_error

    for message in (
        "s.nii.gz: the sequence looks rotated; transpose or flip it so the apex is towards row 0 (or --allow-implausible)",
        "s.nii.gz: ED = ES = frame 1 (1-based): the EF would be 0 %; check the Info cfg or --ed/--es (1-based; without "
        "either, ED/ES are detected), or --allow-implausible",
        "Info_4CH.cfg: ES: 44 is outside frames 1..24 of s.nii.gz; pass the Info cfg of this sequence's view, or --ed/--es",
        "s.nii.gz: no pixel spacing in the header; pass --spacing ROW_MM COL_MM (the scanner's pixel size)",
    ):
        api = from_library_error(InputFileError(message))
        assert "--" not in api.error + api.hint, api.hint
        assert api.status == 400 and api.hint
    assert "the ed/es fields (0-based" in from_library_error(InputFileError(
        "s.nii.gz: x; check the Info cfg or --ed/--es (1-based; without either, ED/ES are detected), or --allow-implausible")).hint
