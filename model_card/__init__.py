"""Model cards (adapter and merged repos) filled from a run's real files; see `model_card.cards`."""
from model_card.cards import EvalEntries, RunInfo, build_card, read_eval_results

__all__ = ["EvalEntries", "RunInfo", "build_card", "read_eval_results"]
