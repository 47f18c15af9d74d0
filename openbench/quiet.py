"""Library noise: progress bars and warnings of transformers, datasets, torch and the hub stay out of openbench's output.

openbench reports what matters (loading, skips, failures) in its own words. Progress bars full of
carriage returns and library warnings are turned off here, before those libraries are imported
(they read these settings at import). ``openbench -v`` / ``run -v`` leaves them on.
"""

from __future__ import annotations

import os
import warnings

#: Environment settings the libraries read at import; only ones the user has not set are changed.
SETTINGS = {
    "TQDM_DISABLE": "1",  # every tqdm bar, e.g. transformers' "Converting and de-quantizing GGUF tensors"
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
#: Python warnings raised from inside these packages.
LIBRARIES = r"(torch|transformers|datasets|huggingface_hub|accelerate|tokenizers|gguf)(\.|$)"

_applied: dict[str, str] = {}


def silence_libraries() -> None:
    for name, value in SETTINGS.items():
        if name not in os.environ:
            os.environ[name] = value
            _applied[name] = value
    warnings.filterwarnings("ignore", module=LIBRARIES)


def restore_libraries() -> None:
    """Undo ``silence_libraries`` (for -v given after the command name): settings it made are removed."""
    for name, value in list(_applied.items()):
        if os.environ.get(name) == value:
            del os.environ[name]
        del _applied[name]
    warnings.filters[:] = [f for f in warnings.filters if not (f[0] == "ignore" and getattr(f[3], "pattern", f[3]) == LIBRARIES)]
