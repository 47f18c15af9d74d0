"""Shared fixtures: an isolated cache, suite files in tmp_path, the CLI at a pinned width, a tiny local model."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

# scripts/build_tiny_tools.py builds the shipped tool-calling tiny model; its bigram builder serves the tests too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

# Words of the tiny model's world. The model is a deterministic bigram machine over them:
# after a number word it says the next one, "eight" ends the answer, any other word
# starts counting from "one". So the prompt's last word fixes the answer's length.
COUNT = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
TINY_SENTENCES = [
    "count from " + " ".join(COUNT),
    "please count from five",
    "hello system user assistant",
    "BOOM goes the test",
]
TINY_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
)


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own response cache, so no test reads or writes ~/.cache."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("OPENBENCH_CACHE_DIR", str(path))
    return path


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[..., Path]:
    """Write a suite YAML (dedented) and data files next to it; returns the suite's path.

    ``files`` maps a name to its content: a list of dicts becomes JSONL, bytes or str are written as is.
    """

    def write(text: str, files: dict[str, Any] | None = None, name: str = "suite.yaml") -> Path:
        for fname, content in (files or {}).items():
            target = tmp_path / fname
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, list):
                target.write_text("".join(json.dumps(row) + "\n" for row in content), encoding="utf-8")
            else:
                target.write_text(content, encoding="utf-8")
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli_runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(cli_runner: CliRunner) -> Callable[..., Any]:
    """Run the ``openbench`` app in-process at a pinned terminal width."""
    from openbench.cli import app

    def run(*args: Any, env: dict[str, str] | None = None) -> Any:
        return cli_runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "120", **(env or {})})

    return run


def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    backend.train_from_iterator(TINY_SENTENCES, trainers.WordLevelTrainer(special_tokens=TINY_SPECIALS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def tiny_model(tokenizer: Any, hidden: int = 32) -> Any:
    """A 2-layer Llama whose greedy output follows the COUNT chain, with live (random) attention and MLPs."""
    from build_tiny_tools import bigram_llama

    vocab = tokenizer.get_vocab()
    nxt = {vocab[a]: vocab[b] for a, b in zip(COUNT, COUNT[1:])}
    nxt[vocab[COUNT[-1]]] = tokenizer.eos_token_id
    return bigram_llama(tokenizer, {tok: nxt.get(tok, vocab[COUNT[0]]) for tok in vocab.values()}, hidden)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny causal LM built from config (no hub), saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(params=["bubblewrap", "process-group"])
def isolation_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test under each sandbox isolation; bubblewrap only where ``bwrap`` works on this machine."""
    from openbench import sandbox

    if request.param == "bubblewrap" and not sandbox.bubblewrap_works():
        pytest.skip("bwrap is missing or does not work here (apt-get install bubblewrap)")
    monkeypatch.setenv("OPENBENCH_SANDBOX", request.param)
    return request.param


@pytest.fixture
def chromium() -> str:
    """A headless Chromium for the browser checks of the HTML pages; they skip without one."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("needs a headless Chromium: apt-get install -y chromium (Debian)")
    return path
