"""frostline inside other training loops: a Lightning callback (:mod:`frostline.integrations.lightning`) and a
Hugging Face ``Trainer`` callback (:mod:`frostline.integrations.hf`).

Each is an optional import: importing it needs its trainer (``pytorch-lightning`` / ``lightning``, or
``transformers`` with ``accelerate``); frostline itself does not.
"""

__all__: list[str] = []
