"""`pushback votes report FILE_OR_REPO --out DIR`: a leaderboard from the Space's votes, as Chatbot Arena
computes one: win rates, and Bradley-Terry ratings (Elo scale) with bootstrap confidence intervals.

    pushback votes report ~/.cache/pushback/feedback --out votes-report     # a votes file or folder
    pushback votes report you/pushback-votes --out votes-report             # the Space's Hub dataset

Each vote is a battle (space/votes.py): `model_a`, `model_b`, `winner` (`model_a`, `model_b`, `tie`,
`tie (bothbad)`). Only blind votes count unless `--include-named`: a visitor who knows which column is the
friction model is not judging blind. Ratings: P(A beats B) = 1 / (1 + 10^((R_B - R_A) / 400)), fitted by
maximum likelihood with a tie as half a win for each side and a weak prior that keeps an undefeated
model's rating finite; the mean rating is 1000. Intervals: the 2.5th and 97.5th percentiles of the
ratings refitted on battles resampled with replacement.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pushback.files import FileProblem, numbered_jsonl, write_atomic, write_json
from pushback.provenance import fingerprint_file, provenance
from space.votes import WINNERS

SCALE, BASE, MEAN_RATING = 400.0, 10.0, 1000.0
PRIOR = 0.01  # L2 penalty on log-strengths: negligible with many votes, finite ratings with few
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NAMED_VOTES = {"baseline": "model_a", "friction": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}


class VotesError(ValueError):
    """Votes that cannot be read; the message names the file and line, or the repo."""


@dataclass(frozen=True)
class Battle:
    model_a: str
    model_b: str
    winner: str  # one of WINNERS' values
    blind: bool


@dataclass(frozen=True)
class Standing:
    model: str
    rating: float
    low: float  # 95% bootstrap interval
    high: float
    battles: int
    wins: int
    losses: int
    ties: int

    @property
    def win_rate(self) -> float:
        """Wins plus half the ties, over battles."""
        return (self.wins + 0.5 * self.ties) / self.battles if self.battles else 0.0


# --- reading -------------------------------------------------------------------------------------


def _battle(row: dict[str, Any], where: str) -> Battle:
    """A vote row as a battle. Rows written before votes named `model_a`/`model_b` (named votes with
    `vote` and `specs`) are read too."""
    if "winner" not in row and row.get("vote") in _NAMED_VOTES and isinstance(row.get("specs"), dict):
        specs = row["specs"]
        row = {"model_a": specs.get("baseline"), "model_b": specs.get("friction"),
               "winner": _NAMED_VOTES[row["vote"]], "blind": False}
    missing = [key for key in ("model_a", "model_b", "winner") if not isinstance(row.get(key), str)]
    if missing:
        raise VotesError(f"{where}: not a vote (no {', '.join(missing)})")
    if row["winner"] not in WINNERS.values():
        raise VotesError(f"{where}: winner {row['winner']!r} is not one of {', '.join(WINNERS.values())}")
    return Battle(row["model_a"], row["model_b"], row["winner"], bool(row.get("blind")))


def read_file(path: Path) -> list[Battle]:
    return [_battle(row, f"{path}:{number}") for number, row in numbered_jsonl(path)]


def vote_files(source: str, hub: Callable[[], Any] | None = None) -> list[Path]:
    """The JSONL files of a votes file, a folder (searched recursively) or a Hub dataset `OWNER/NAME`
    (downloaded through `hub`, default `pushback.hub.hub_api`)."""
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.rglob("*.jsonl"))
        if not files:
            raise VotesError(f"{path}: no .jsonl files of votes in this folder")
        return files
    if not _REPO_ID.match(source):
        raise VotesError(f"{source}: no such file or folder, and not a Hub dataset id OWNER/NAME")
    if hub is None:
        from pushback.hub import hub_api as hub
    try:
        api = hub()
        names = sorted(n for n in api.list_repo_files(source, repo_type="dataset") if n.endswith(".jsonl"))
        files = [Path(api.hf_hub_download(source, name, repo_type="dataset")) for name in names]
    except Exception as e:  # noqa: BLE001 - offline, not found, no access: one line saying which
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise VotesError(f"cannot read the Hub dataset {source} ({type(e).__name__}: {first_line})") from None
    if not files:
        raise VotesError(f"{source}: the Hub dataset holds no .jsonl files of votes")
    return files


# --- ratings -------------------------------------------------------------------------------------


def fit_ratings(battles: Sequence[Battle], models: Sequence[str], counts: Any = None) -> Any:
    """Bradley-Terry ratings (numpy array, in `models` order) by Newton's method. `counts` weighs each
    battle (the bootstrap's resampling); ties are half a win for each side."""
    import numpy as np

    index = {m: i for i, m in enumerate(models)}
    a = np.array([index[b.model_a] for b in battles])
    b = np.array([index[b.model_b] for b in battles])
    score = np.array([{"model_a": 1.0, "model_b": 0.0}.get(bt.winner, 0.5) for bt in battles])
    weight = np.ones(len(battles)) if counts is None else np.asarray(counts, dtype=float)
    # One row per distinct (a, b, outcome), weighted by how often it occurs: a few rows however many votes.
    keys, inverse = np.unique(np.stack([a, b, 2 * score]), axis=1, return_inverse=True)
    a, b, score = keys[0].astype(int), keys[1].astype(int), keys[2] / 2
    weight = np.bincount(inverse.ravel(), weight, keys.shape[1])
    k = len(models)
    theta = np.zeros(k)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(theta[a] - theta[b])))
        residual = weight * (p - score)
        grad = np.bincount(a, residual, k) - np.bincount(b, residual, k) + PRIOR * theta
        curvature = weight * p * (1 - p)
        hessian = PRIOR * np.eye(k)
        np.add.at(hessian, (a, a), curvature)
        np.add.at(hessian, (b, b), curvature)
        np.add.at(hessian, (a, b), -curvature)
        np.add.at(hessian, (b, a), -curvature)
        step = np.linalg.solve(hessian, grad)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    ratings = SCALE / math.log(BASE) * theta
    return ratings - ratings.mean() + MEAN_RATING


def standings(battles: Sequence[Battle], rounds: int = 1000, seed: int = 0) -> list[Standing]:
    """Every model's rating with its 95% bootstrap interval and its record, best first."""
    import numpy as np

    models = sorted({m for b in battles for m in (b.model_a, b.model_b)})
    ratings = fit_ratings(battles, models)
    rng = np.random.default_rng(seed)
    samples = np.array([fit_ratings(battles, models, np.bincount(rng.integers(0, len(battles), len(battles)),
                                                                 minlength=len(battles)))
                        for _ in range(rounds)])
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    table = []
    for i, model in enumerate(models):
        mine = [b for b in battles if model in (b.model_a, b.model_b)]
        wins = sum(b.winner == ("model_a" if b.model_a == model else "model_b") for b in mine)
        ties = sum(b.winner.startswith("tie") for b in mine)
        table.append(Standing(model, float(ratings[i]), float(low[i]), float(high[i]), len(mine), wins,
                              len(mine) - wins - ties, ties))
    return sorted(table, key=lambda s: -s.rating)


def head_to_head(battles: Sequence[Battle], models: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """row model's win rate against column model (ties as half), None where they never met."""
    table: dict[str, dict[str, float | None]] = {}
    for row in models:
        table[row] = {}
        for col in models:
            met = [b for b in battles if {b.model_a, b.model_b} == {row, col} and row != col]
            won = sum(1.0 if b.winner == ("model_a" if b.model_a == row else "model_b") else
                      0.5 if b.winner.startswith("tie") else 0.0 for b in met)
            table[row][col] = won / len(met) if met else None
    return table


# --- the report ----------------------------------------------------------------------------------


def render_markdown(table: Sequence[Standing], pairs: dict[str, dict[str, float | None]], counted: int,
                    skipped: dict[str, int], source: str, rounds: int) -> str:
    lines = ["# Votes leaderboard", "",
             f"{counted} battles from `{source}`" + "".join(f"; {n} {why} left out" for why, n in skipped.items() if n)
             + f". Ratings: Bradley-Terry on the Elo scale (mean 1000), 95% intervals from {rounds} bootstrap rounds.",
             "", "| rank | model | rating | 95% interval | win rate | battles | wins | losses | ties |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rank, s in enumerate(table, start=1):
        lines.append(f"| {rank} | `{s.model}` | {s.rating:.0f} | {s.low:.0f} – {s.high:.0f} | {100 * s.win_rate:.1f}% "
                     f"| {s.battles} | {s.wins} | {s.losses} | {s.ties} |")
    models = [s.model for s in table]
    lines += ["", "## Head to head (row's win rate against column, ties as half)", "",
              "| | " + " | ".join(f"`{m}`" for m in models) + " |", "|---" * (len(models) + 1) + "|"]
    for row in models:
        cells = ["–" if pairs[row][col] is None else f"{100 * pairs[row][col]:.0f}%" for col in models]
        lines.append(f"| `{row}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_plot(table: Sequence[Standing], path: Path) -> None:
    """Ratings with their intervals (left) and win rates (right), best first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.model if len(s.model) <= 48 else s.model[:45] + "…" for s in table]
    ys = list(range(len(table)))[::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 1.2 + 0.6 * len(table)), sharey=True)
    left.errorbar([s.rating for s in table], ys, xerr=[[s.rating - s.low for s in table], [s.high - s.rating for s in table]],
                  fmt="o", capsize=4)
    left.axvline(MEAN_RATING, linestyle=":", color="grey", linewidth=1)
    left.set(yticks=ys, yticklabels=names, xlabel="Bradley-Terry rating (Elo scale), 95% bootstrap interval",
             title="Rating")
    right.barh(ys, [s.win_rate for s in table])
    for y, s in zip(ys, table):
        right.annotate(f"{100 * s.win_rate:.0f}% of {s.battles}", (s.win_rate, y), va="center", fontsize=8,
                       xytext=(3, 0), textcoords="offset points")
    right.set(xlim=(0, 1.15), xlabel="win rate (ties as half)", title="Win rate")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)


def report(source: str, out: Path, *, include_named: bool = False, rounds: int = 1000, seed: int = 0,
           hub: Callable[[], Any] | None = None) -> dict[str, Any]:
    files = vote_files(source, hub)
    battles = [b for path in files for b in read_file(path)]
    counted = [b for b in battles if (b.blind or include_named) and b.model_a != b.model_b]
    skipped = {"named votes (use --include-named to count them)": sum(not b.blind and not include_named for b in battles),
               "votes of a model against itself": sum(b.model_a == b.model_b for b in battles)}
    if not counted:
        raise VotesError(f"{source}: no battles to rate among {len(battles)} votes"
                         + ("" if include_named else " (only blind votes count unless --include-named)"))
    table = standings(counted, rounds, seed)
    pairs = head_to_head(counted, [s.model for s in table])
    paths = {"report": out / "leaderboard.md", "plot": out / "leaderboard.png", "results": out / "leaderboard.json"}
    write_atomic(paths["report"], render_markdown(table, pairs, len(counted), skipped, source, rounds))
    render_plot(table, paths["plot"])
    write_json(paths["results"], {
        "source": source, "battles": len(counted), "skipped": skipped, "rounds": rounds, "seed": seed,
        "standings": [{**asdict(s), "win_rate": s.win_rate} for s in table], "head_to_head": pairs,
        "provenance": provenance({f"votes:{p.name}": fingerprint_file(p) for p in files}),
    })
    return {"standings": table, **paths}


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="subcommand", required=True, metavar="{report}")
    r = actions.add_parser("report", help="win rates and Bradley-Terry ratings with bootstrap intervals, and a plot")
    r.add_argument("source", metavar="FILE_OR_REPO", help="a votes JSONL file, a folder of them, or a Hub dataset OWNER/NAME")
    r.add_argument("--out", required=True, help="folder for leaderboard.md, leaderboard.png and leaderboard.json")
    r.add_argument("--include-named", action="store_true", help="count votes cast with the model names shown")
    r.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds for the intervals")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """`pushback votes report FILE_OR_REPO --out DIR`."""
    if args.rounds < 1:
        print(f"error: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 1
    try:
        result = report(args.source, Path(args.out), include_named=args.include_named, rounds=args.rounds,
                        seed=args.seed)
    except (VotesError, FileProblem, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for rank, s in enumerate(result["standings"], start=1):
        print(f"{rank}. {s.model}  {s.rating:.0f} [{s.low:.0f}, {s.high:.0f}]  win rate {100 * s.win_rate:.1f}% "
              f"of {s.battles}")
    for name in ("report", "plot", "results"):
        print(f"{name}: {result[name]}")
    return 0
