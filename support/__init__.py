"""Runnable helpers shared by the tests and the benchmarks (never imported by the product): a real
OpenAI-compatible HTTP server on loopback, a scripted model behind it, and tiny models for the Space."""
