"""The generation wing: the LiteLLM persona relay that writes records (`pushback generate`).

See generation/README.md. Entry points: `generation.run.main` (the CLI handler) and
`generation.run.generate` (the same from Python).
"""
