"""What a person reads: terminal tables (rich), the self-contained HTML reports, and their matplotlib plots.

Renders results it is given; knows nothing about how they were computed.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

if TYPE_CHECKING:
    from .html import write_compare_report, write_evaluate_report, write_run_report
    from .terminal import class_table, compare_table, confusion_table, history_table

__all__ = [
    "class_table",
    "compare_table",
    "confusion_table",
    "history_table",
    "write_compare_report",
    "write_evaluate_report",
    "write_run_report",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
