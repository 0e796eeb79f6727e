"""The persona relay for one record, as a few named steps:

    write_prompt   a user message for the target category (curated messages as few-shot examples)
    relay          the six personas in turn, each seeing the thoughts before it
    synthesize     the final answer for the category's expected behaviour
    baseline       the eager, frictionless answer -- it needs only the prompt, so it runs beside the relay
    overcautious   benign records only: the needless refusal, hedge or question (the rejected side of a
                   benign preference pair); also beside the relay

Critical path: 1 + len(PERSONAS) + 1 = 8 sequential calls (`CRITICAL_CALLS`); 9 calls in all, 10 for a
benign record (`calls_for`).
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from generation.parse import clean_prompt, clean_reply
from generation.plan import Examples, Job
from generation.templates import OVERCAUTION_KINDS, Templates, persona_title
from pushback.chat import Message
from pushback.endpoint import CallFailed, Endpoint, FatalError
from pushback.records import EXPECTED_FOR, PERSONAS, Record, make_record, record_id
from pushback.redaction import redact

CRITICAL_CALLS = 1 + len(PERSONAS) + 1
CALLS_PER_RECORD = CRITICAL_CALLS + 1  # and one more for a benign record's over-cautious answer
MAX_TOKENS = {"prompt": 160, "persona": 220, "synthesis": 600, "baseline": 300, "overcautious": 300}


def calls_for(category: str) -> int:
    """Calls one record of this category takes when nothing fails."""
    return CALLS_PER_RECORD + (category == "benign")
PROMPT_REWRITES = 3  # fresh prompts asked for when one repeats a message already taken


class DuplicatePrompt(CallFailed):
    def __init__(self, text: str):
        super().__init__(f"the model kept writing messages that are already taken (last: {text[:60]!r})", "duplicate")


@dataclass
class Relay:
    client: Endpoint
    templates: Templates
    examples: Examples
    seed: int = 0

    def _messages(self, user: str) -> list[Message]:
        return [{"role": "system", "content": self.templates.system}, {"role": "user", "content": user}]

    def _seed(self, job: Job, step: str, attempt: int = 0) -> int:
        return random.Random(f"{self.seed}:{job.index}:{job.category}:{step}:{attempt}").randrange(2**31)

    async def write_prompt(self, job: Job, taken: set[str], *, twin_for: str | None = None) -> str:
        """A new user message (or, with `twin_for`, the benign look-alike of that message) whose id is
        not taken yet; the id is reserved in `taken` before returning."""
        rng = random.Random(self._seed(job, "examples"))
        text = ""
        for attempt in range(PROMPT_REWRITES):
            if twin_for is None:
                request = self.templates.render(
                    "prompt", category=job.category, category_guide=self.templates.category_guide(job.category),
                    topic=job.topic, examples=self.examples.prompts(job.category, rng))
            else:
                request = self.templates.render("twin", category=job.category, topic=job.topic, user_input=twin_for)
            step = "twin" if twin_for else "prompt"
            text = await self.client.complete(self._messages(request), max_tokens=MAX_TOKENS["prompt"],
                                              seed=self._seed(job, step, attempt), accept=clean_prompt)
            if record_id(text) not in taken:
                taken.add(record_id(text))
                return text
        raise DuplicatePrompt(text)

    async def relay(self, user_input: str, category: str) -> list[tuple[str, str]]:
        expected = EXPECTED_FOR[category]
        thoughts: list[tuple[str, str]] = []
        for persona in PERSONAS:
            request = self.templates.render(
                "persona", persona=persona, persona_title=persona_title(persona),
                persona_guide=self.templates.persona_guide(persona), category=category, expected=expected,
                behaviour_guide=self.templates.behaviour_guide(expected), user_input=user_input,
                thoughts=_thoughts_text(thoughts) or "(none yet: you are the first)")
            thought = await self.client.complete(self._messages(request), max_tokens=MAX_TOKENS["persona"],
                                                 accept=clean_reply)
            thoughts.append((persona, thought))
        return thoughts

    async def synthesize(self, user_input: str, category: str, thoughts: list[tuple[str, str]],
                         rng: random.Random) -> str:
        expected = EXPECTED_FOR[category]
        request = self.templates.render(
            "synthesis", category=category, expected=expected, behaviour_guide=self.templates.behaviour_guide(expected),
            user_input=user_input, thoughts=_thoughts_text(thoughts), example=self.examples.answer(category, rng))
        return await self.client.complete(self._messages(request), max_tokens=MAX_TOKENS["synthesis"],
                                          accept=clean_reply)

    async def baseline(self, user_input: str) -> str:
        request = self.templates.render("baseline", user_input=user_input)
        return await self.client.complete(self._messages(request), max_tokens=MAX_TOKENS["baseline"],
                                          accept=clean_reply)

    async def overcautious(self, user_input: str, kind: str) -> str:
        request = self.templates.render("overcautious", user_input=user_input, kind=kind,
                                        overcaution_guide=self.templates.overcaution_guide(kind))
        return await self.client.complete(self._messages(request), max_tokens=MAX_TOKENS["overcautious"],
                                          accept=clean_reply)

    async def record(self, job: Job, user_input: str, category: str, *, twin_of: str | None = None) -> Record:
        """Relay, synthesis and (beside them) the baseline, and for a benign prompt the over-cautious answer;
        validated before returning."""
        eager = asyncio.create_task(self.baseline(user_input))
        cautious = None
        if category == "benign":
            kind = random.Random(self._seed(job, "overcaution")).choice(OVERCAUTION_KINDS)
            cautious = asyncio.create_task(self.overcautious(user_input, kind))
        try:
            thoughts = await self.relay(user_input, category)
            final = await self.synthesize(user_input, category, thoughts, random.Random(self._seed(job, "answer")))
            baseline_answer = await eager
            overcautious_answer = await cautious if cautious else None
        finally:
            _drop(eager)  # stops the side calls if the relay failed
            if cautious:
                _drop(cautious)
        return make_record(user_input, category, thoughts, final, baseline_answer, source="generated",
                           model=self.client.model, twin_of=twin_of, topic=job.topic,
                           overcautious_answer=overcautious_answer)

    async def run(self, job: Job, taken: set[str], write: Callable[[Record], object]) -> int:
        """Make the job's record (and its benign twin), handing each to `write` as it is ready.

        The twin's relay starts as soon as its prompt exists, beside the original's; it is written
        only after the original, so its `twin_of` never points at a record that is not in the file.
        """
        user_input = await self.write_prompt(job, taken)
        if not job.twin:
            await write(await self.record(job, user_input, job.category))
            return 1
        twin = asyncio.create_task(self._twin(job, user_input, taken))
        try:
            original = await self.record(job, user_input, job.category)
        except BaseException:
            _drop(twin)
            raise
        await write(original)
        await write(await twin)
        return 2

    async def _twin(self, job: Job, original_input: str, taken: set[str]) -> Record:
        twin_input = await self.write_prompt(job, taken, twin_for=original_input)
        return await self.record(job, twin_input, "benign", twin_of=record_id(original_input))


@dataclass(frozen=True)
class Outcome:
    """How a job ended: "ok", "failed" (its missing records are given up; `cause` says why) or "fatal"
    (the run must stop: a bad key, an unknown model, an output that cannot be written). `message` is redacted."""

    kind: str
    cause: str = ""
    message: str = ""


async def run_job(relay: Relay, job: Job, taken: set[str], write: Callable[[Record], Awaitable[object]],
                  secret: str | None = None) -> Outcome:
    """Run one job through the relay and classify how it ended; a provider error never escapes as text."""
    try:
        await relay.run(job, taken, write)
    except FatalError as error:
        return Outcome("fatal", "fatal", redact(str(error), secret))
    except (CallFailed, ValueError) as error:  # ValueError: a record that failed validation
        cause = error.kind if isinstance(error, CallFailed) else "invalid"
        return Outcome("failed", cause, redact(str(error), secret))
    except Exception as error:  # noqa: BLE001 - e.g. the output cannot be written: stop, and say why
        return Outcome("fatal", "error", f"{type(error).__name__}: {redact(str(error), secret)}")
    return Outcome("ok")


def _drop(task: asyncio.Task) -> None:
    """Cancel a side task we no longer need, and mark its outcome as seen (no 'never retrieved' noise)."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _thoughts_text(thoughts: list[tuple[str, str]]) -> str:
    return "\n\n".join(f"[{persona_title(p)}] {t}" for p, t in thoughts)
