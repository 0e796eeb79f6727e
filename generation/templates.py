"""The editable prompt templates: plain text files with `$name` placeholders (Python `string.Template`).

`generation/templates/` holds the built-in set. `--templates DIR` replaces any of them file by file;
files it lacks come from the built-in set. Every file is checked when loaded, so a misspelt
placeholder is reported with its file name before any call is made.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from pushback.records import BEHAVIOURS, CATEGORIES, PERSONAS

BUILTIN_DIR = Path(__file__).parent / "templates"

# template -> the placeholders it may use
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "prompt": frozenset({"category", "category_guide", "topic", "examples"}),
    "twin": frozenset({"category", "topic", "user_input"}),
    "persona": frozenset({"persona", "persona_title", "persona_guide", "category", "expected", "behaviour_guide",
                          "user_input", "thoughts"}),
    "synthesis": frozenset({"category", "expected", "behaviour_guide", "user_input", "thoughts", "example"}),
    "baseline": frozenset({"user_input"}),
    "overcautious": frozenset({"user_input", "kind", "overcaution_guide"}),
}
# Kinds of needless caution a benign record's `overcautious_answer` shows (one per record, in turn by seed).
OVERCAUTION_KINDS = ("refuse", "hedge", "clarify", "lecture", "vague")
# Guides are inserted verbatim: they take no placeholders.
GUIDES = (
    [f"persona_{p}" for p in PERSONAS] + [f"category_{c}" for c in CATEGORIES] + [f"behaviour_{b}" for b in BEHAVIOURS]
    + [f"overcaution_{k}" for k in OVERCAUTION_KINDS]
)


class TemplateError(ValueError):
    """A template file that is missing, empty or uses a placeholder it cannot have."""


@dataclass(frozen=True)
class Templates:
    texts: dict[str, str]
    sources: dict[str, Path]

    def render(self, name: str, **values: str) -> str:
        return string.Template(self.texts[name]).substitute(values)

    @property
    def system(self) -> str:
        return self.texts["system"]

    def persona_guide(self, persona: str) -> str:
        return self.texts[f"persona_{persona}"]

    def category_guide(self, category: str) -> str:
        return self.texts[f"category_{category}"]

    def behaviour_guide(self, behaviour: str) -> str:
        return self.texts[f"behaviour_{behaviour}"]

    def overcaution_guide(self, kind: str) -> str:
        return self.texts[f"overcaution_{kind}"]

    @property
    def topics(self) -> list[str]:
        return [line.strip() for line in self.texts["topics"].splitlines() if line.strip() and not line.startswith("#")]


def _read(name: str, override: Path | None) -> tuple[str, Path]:
    for folder in (override, BUILTIN_DIR):
        if folder is not None and (folder / f"{name}.txt").is_file():
            path = folder / f"{name}.txt"
            try:
                data = path.read_bytes()
            except OSError as e:
                raise TemplateError(f"{path}: cannot read ({e.strerror or e})") from None
            try:
                return data.decode("utf-8").removeprefix("\ufeff").strip(), path
            except UnicodeDecodeError as e:
                line = data.count(b"\n", 0, e.start) + 1
                raise TemplateError(f"{path}:{line}: not valid UTF-8 (byte {data[e.start]:#04x})") from None
    raise TemplateError(f"{BUILTIN_DIR / (name + '.txt')}: template missing")


def _check(name: str, text: str, path: Path) -> None:
    if not text:
        raise TemplateError(f"{path}: template is empty")
    template = string.Template(text)
    if not template.is_valid():
        raise TemplateError(f"{path}: invalid placeholder syntax (write a literal dollar sign as $$)")
    allowed = PLACEHOLDERS.get(name, frozenset())
    unknown = sorted(set(template.get_identifiers()) - allowed)
    if unknown:
        known = ", ".join(f"${p}" for p in sorted(allowed)) or "none"
        raise TemplateError(f"{path}: unknown placeholder(s) {', '.join('$' + u for u in unknown)}; allowed: {known}")


def load_templates(override_dir: str | Path | None = None) -> Templates:
    """The built-in templates, with any file in `override_dir` used instead of its built-in namesake."""
    override = Path(override_dir).expanduser() if override_dir else None
    if override is not None and not override.is_dir():
        raise TemplateError(f"{override}: --templates is not a directory")
    texts: dict[str, str] = {}
    sources: dict[str, Path] = {}
    for name in [*PLACEHOLDERS, *GUIDES, "topics"]:
        text, path = _read(name, override)
        _check(name, text, path)
        texts[name], sources[name] = text, path
    return Templates(texts, sources)


def persona_title(persona: str) -> str:
    """`problem_framer` -> `problem framer`."""
    return persona.replace("_", " ")
