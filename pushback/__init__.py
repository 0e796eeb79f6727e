"""Push-Back AI core: records, the chat format, `<think>` parsing, model specs and backends.

Everything else (space, generation, training, evaluation, cards) imports from here; this package
imports none of them.
"""

__version__ = "0.1.0"
