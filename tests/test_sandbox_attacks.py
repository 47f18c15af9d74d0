"""Model code that attacks the code scorer: each attack ships a wrong (or no) solution and tries to pass
anyway, to harm openbench, to outlive its item, or to read or write the user's files.

Each must fail its own item, with an explanation, and nothing else: the test process (openbench itself)
lives on, honest items still pass, and no process the attack started survives. Every attack runs under
both isolations, except the filesystem ones: the process-group mode does not isolate files (README).
Never kill(-1) here: outside a PID namespace, as root, it ends every process on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

import pytest

from openbench import sandbox
from openbench.errors import OpenbenchError
from openbench.scorers.code import code

PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
CASE: dict = {}
TIMEOUT_S = 1
RUN_TIMEOUT_S = 3  # a whole run scores items 4 at a time: more room on a busy machine


def unique_sleep() -> str:
    """A ``sleep`` argument no other process on the machine has, to find survivors by command line."""
    return f"{3600 + secrets.randbelow(10**6) / 10**7:.7f}"


def survivors(duration: str) -> list[int]:
    """Host PIDs of live (non-zombie) processes running ``sleep <duration>``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if cmdline == b"sleep\0" + duration.encode() + b"\0" and state != b"Z":
            found.append(int(entry.name))
    return found


def assert_no_survivors(duration: str) -> None:
    # The kernel tears a PID namespace down asynchronously; give a loaded machine a moment.
    deadline = time.monotonic() + 5
    while survivors(duration) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors(duration) == []


def score(output: str, **params) -> object:
    return code(output, CASE, test=TEST, entry_point="add", prompt=PROMPT, **{"timeout_s": TIMEOUT_S, **params})


# Each attack: the model's answer (a whole program before the tests), and what its item's explanation says.
WRONG = "def add(a, b):\n    return a - b\n"
ATTACKS = {
    "sys_exit_0": (WRONG + "import sys\nsys.exit(0)\n", "exited with status 0 before the tests finished"),
    "os_exit_0": (WRONG + "import os\nos._exit(0)\n", "exited with status 0 before the tests finished"),
    "exit_after_check_fails": (
        WRONG + "import atexit, os\natexit.register(lambda: os._exit(0))\n",  # check() raises, exit 0 anyway
        "exited with status 0 before the tests finished",
    ),
    "kill_process_group": (
        WRONG + "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
        "killed by SIGKILL before the tests finished",
    ),
    "self_signal": (WRONG + "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", "killed by SIGTERM"),
    "ten_gigabytes": (WRONG + "block = bytearray(10 * 1024**3)\n", "MemoryError"),
    "sleep_forever": (WRONG + "import time\ntime.sleep(10**9)\n", f"timed out after {TIMEOUT_S}s"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_fails_its_item(name, isolation_mode):
    output, expected = ATTACKS[name]
    result = score(output)
    assert not result.passed and result.value == 0.0
    assert expected in result.explanation
    assert result.explanation.endswith(f"[isolation: {isolation_mode}]")


def test_the_tests_must_run_to_the_end(isolation_mode):
    # Same answers without the attack: the correct one passes, the wrong one fails on its assertion.
    assert score("def add(a, b):\n    return a + b\n").passed
    assert "AssertionError" in score(WRONG).explanation
    # Exit status 0 is not enough, whatever prints success.
    faked = score("def add(a, b):\n    return a + b\nprint('tests passed')\nimport os\nos._exit(0)\n")
    assert not faked.passed and "before the tests finished" in faked.explanation


def test_killing_the_parent(isolation_mode):
    # bubblewrap: the parent is the namespace's init, out of reach; process-group: the disposable intermediate.
    result = score(WRONG + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    assert not result.passed
    if isolation_mode == "bubblewrap":
        assert "PermissionError" in result.explanation
    else:
        assert "intermediate process was killed by SIGKILL before it reported" in result.explanation
    assert os.getpid() > 1  # still here: openbench is not the code's parent


def test_a_double_fork_does_not_survive(isolation_mode):
    duration = unique_sleep()
    escape = (
        WRONG + "import os, time\n"
        "read, write = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"  # leaves the process group and the session
        "    escapee = os.fork()\n"
        "    if escapee == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{duration}'])\n"
        "    os.write(write, str(escapee).encode())\n"
        "    os._exit(0)\n"
        "escapee = int(os.read(read, 32))\n"
        "time.sleep(0.3)\n"
        "print('escapee running:', open(f'/proc/{escapee}/cmdline').read().split(chr(0))[0], flush=True)\n"
        "os._exit(0)\n"
    )
    result = sandbox.run_python(escape, timeout_s=TIMEOUT_S)
    assert "escapee running: sleep" in result.stdout, result.stderr  # the escape worked inside
    assert_no_survivors(duration)  # and did not outlive its item
    scored = score(escape)
    assert not scored.passed and "exited with status 0 before the tests finished" in scored.explanation
    assert_no_survivors(duration)


def test_a_bounded_fork_bomb(isolation_mode):
    duration = unique_sleep()
    bomb = (
        WRONG + "import os\n"
        "for _ in range(7):\n"  # at most 2**7 = 128 processes if nothing stops it
        "    os.fork()\n"
        f"os.execv('/bin/sleep', ['sleep', '{duration}'])\n"
    )
    result = sandbox.run_python(bomb, timeout_s=TIMEOUT_S)
    assert not result.ok
    if isolation_mode == "bubblewrap":  # run as nobody: the process cap holds even for a root openbench
        assert "BlockingIOError" in result.stderr
    assert_no_survivors(duration)  # through the code scorer: test_a_whole_run_survives_every_attack


def test_the_isolation_is_chosen_and_can_be_forced(monkeypatch, tmp_path):
    for tool in ("unshare", "sleep"):  # what the process-group mode may use, and no bwrap
        if shutil.which(tool):
            (tmp_path / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(tmp_path))
    sandbox.bubblewrap_works.cache_clear()
    try:
        monkeypatch.setenv("OPENBENCH_SANDBOX", "auto")
        assert sandbox.isolation() == "process-group"
        assert sandbox.run_python("print('ran')").stdout == "ran\n"
        monkeypatch.setenv("OPENBENCH_SANDBOX", "bubblewrap")
        with pytest.raises(OpenbenchError, match="bwrap is missing or does not work here"):
            sandbox.isolation()
        monkeypatch.setenv("OPENBENCH_SANDBOX", "chroot")
        with pytest.raises(OpenbenchError, match="use auto, bubblewrap or process-group"):
            sandbox.isolation()
    finally:
        sandbox.bubblewrap_works.cache_clear()  # probed again with the real PATH


@pytest.fixture
def planted(tmp_cache: Path, tmp_path: Path) -> dict[str, str]:
    """A secret in the response cache, another run's records, and a host path to write to."""
    secret = secrets.token_hex(8)
    (tmp_cache / "secret.txt").write_text(secret)
    old_run = tmp_path / "results" / "older-run"
    old_run.mkdir(parents=True)
    (old_run / "records.jsonl").write_text(json.dumps({"output": secret}) + "\n")
    return {
        "secret": secret,
        "cache": str(tmp_cache / "secret.txt"),
        "records": str(old_run / "records.jsonl"),
        "target": str(tmp_path / "written-by-the-model.txt"),
    }


@pytest.fixture
def bubblewrap_only(monkeypatch) -> None:
    if not sandbox.bubblewrap_works():
        pytest.skip("bwrap is missing here; the process-group mode does not isolate files")
    monkeypatch.setenv("OPENBENCH_SANDBOX", "bubblewrap")


def test_home_shows_only_the_interpreter(bubblewrap_only):
    # The interpreter may live in the home folder (pyenv, a venv); only its own folders are bound.
    home = Path.home()
    probe = f"import json, os\nprint(json.dumps(sorted(os.listdir({str(home)!r})) if os.path.isdir({str(home)!r}) else []))"
    result = sandbox.run_python(probe)
    assert result.ok, result.stderr
    bound = {Path(f).relative_to(home).parts[0] for f in sandbox.interpreter_folders() if Path(f).is_relative_to(home)}
    assert set(json.loads(result.stdout)) == bound


def file_attacks(planted: dict[str, str]) -> dict[str, str]:
    """Answers that would pass if the files were reachable: a correct add after the file access."""
    right = "def add(a, b):\n    return a + b\n"
    return {
        "read_cache": f"print(open({planted['cache']!r}).read())\n" + right,
        "read_records": f"print(open({planted['records']!r}).read())\n" + right,
        "write_outside_tmp": f"open({planted['target']!r}, 'w').write('x')\n" + right,
        "write_system": "open('/usr/openbench-was-here', 'w').write('x')\n" + right,
    }


@pytest.mark.parametrize(
    "name", ["read_cache", "read_records", "write_outside_tmp", "write_system"]
)
def test_files_out_of_reach(name, planted, bubblewrap_only):
    result = score(file_attacks(planted)[name])
    assert not result.passed and result.explanation.endswith("[isolation: bubblewrap]")
    assert any(e in result.explanation for e in ("FileNotFoundError", "PermissionError", "OSError"))
    assert planted["secret"] not in result.explanation
    assert not Path(planted["target"]).exists() and not Path("/usr/openbench-was-here").exists()


SUITE = """
name: attacks
models:
  - {id: attacker, provider: reference, model: attacker, field: output, concurrency: 4}
tasks:
  - name: code
    prompt: "{{ prompt }}"
    data: {file: attacks.jsonl}
    scorers:
      - {type: code, timeout_s: %d}
"""


def test_a_whole_run_survives_every_attack(isolation_mode, planted, write_suite, invoke, tmp_path):
    duration = unique_sleep()
    answers = {name: output for name, (output, _) in ATTACKS.items()}
    answers["honest"] = "    return a + b\n"
    answers["kill_parent"] = WRONG + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    answers["double_fork"] = (
        WRONG + f"import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{duration}'])\n    os._exit(0)\nos.wait()\nos._exit(0)\n"
    )
    answers["fork_bomb"] = WRONG + f"import os\nfor _ in range(6):\n    os.fork()\nos.execv('/bin/sleep', ['sleep', '{duration}'])\n"
    if isolation_mode == "bubblewrap":
        answers.update(file_attacks(planted))
    rows = [{"id": name, "prompt": PROMPT, "entry_point": "add", "test": TEST, "output": out} for name, out in answers.items()]
    suite = write_suite(SUITE % RUN_TIMEOUT_S, {"attacks.jsonl": rows})
    out = tmp_path / "results"
    result = invoke("run", suite, "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = [d for d in out.iterdir() if d.name != "older-run"]
    records = {r["case_id"]: r for r in map(json.loads, (run_dir / "records.jsonl").read_text().splitlines())}
    assert set(records) == set(answers)
    assert records["honest"]["passed"] is True
    for name, record in records.items():
        explanation = record["scores"]["code"]["explanation"]
        assert explanation.endswith(f"[isolation: {isolation_mode}]"), (name, explanation)
        assert planted["secret"] not in json.dumps(record)
        if name != "honest":
            assert record["passed"] is False, (name, explanation)
    assert planted["secret"] not in result.output
    assert json.loads((run_dir / "manifest.json").read_text())["sandbox"] == isolation_mode  # the run says how
    assert f"model-written code ran under: {isolation_mode} isolation" in result.output
    assert not Path(planted["target"]).exists()
    assert_no_survivors(duration)
