"""Evaluation: an offline behaviour classifier, vendored benchmark suites, runs of models over suites,
and reports (markdown, plot, model-index results)."""
