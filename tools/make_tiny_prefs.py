"""Regenerate rmdata/resources/data/tiny-prefs.jsonl, the preference set of the CPU demo recipe.

Every pair is an instruction with a format constraint; chosen follows it, rejected breaks it. The
preference is learnable only by reading prompt and response together: each response style appears as
chosen half of the time and as rejected the other half, so the model must relate the instruction to the
response.
- `case`: "... in uppercase" or "... in lowercase"; chosen is the sentence in the asked case, rejected in
  the other case.
- `ending`: "end with a question mark" or "... with an exclamation mark"; chosen ends as asked,
  rejected with the other mark.
- `length`: "answer in one word" or "answer in a full sentence"; chosen has the asked length, rejected the
  other.

Run: python tools/make_tiny_prefs.py  (deterministic, seed 0)
"""

import json
import random
from pathlib import Path

SUBJECTS = ("the cat", "my brother", "a farmer", "the teacher", "our team", "the old man", "a child", "the pilot")
VERBS = ("found", "painted", "carried", "lost", "sold", "cleaned", "opened", "watched", "built", "hid")
THINGS = ["apple", "river", "stone", "cloud", "garden", "pencil", "window", "candle", "forest", "bridge", "rocket", "violin", "mirror", "basket", "planet", "shadow", "meadow", "button", "castle", "dragon", "harbor", "jacket", "ladder", "marble", "needle", "quilt", "rabbit", "saddle", "tunnel", "wagon"]
PLACES = ("near the river", "in the morning", "at the market", "under the bridge", "after lunch", "by the sea")
CASE_PROMPTS = (
    "Rewrite the sentence in {case}: {sentence}",
    "Please put this in {case}. {sentence}",
    "Convert to {case} letters: {sentence}",
)
ENDING_PROMPTS = (
    "Describe the {thing}, and end with {mark}.",
    "Say something about a {thing}. Finish with {mark}.",
)
LENGTH_PROMPTS = (
    "What did {subject} find? Answer in {length}.",
    "Tell me what {subject} saw, in {length}.",
)


def sentence(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(VERBS), "the", rng.choice(THINGS), rng.choice(PLACES)]
    return " ".join(words).capitalize()


def case_pair(rng: random.Random) -> dict:
    text = sentence(rng) + "."
    upper = rng.random() < 0.5
    prompt = rng.choice(CASE_PROMPTS).format(case="uppercase" if upper else "lowercase", sentence=text)
    good, bad = (text.upper(), text.lower()) if upper else (text.lower(), text.upper())
    return {"prompt": prompt, "chosen": good, "rejected": bad, "task": "case"}


def ending_pair(rng: random.Random) -> dict:
    marks = {"a question mark": "?", "an exclamation mark": "!"}
    asked, other = rng.sample(sorted(marks), 2)
    thing = rng.choice(THINGS)
    body = f"The {thing} is {rng.choice(('old', 'bright', 'small', 'heavy', 'strange', 'lovely'))}"
    prompt = rng.choice(ENDING_PROMPTS).format(thing=thing, mark=asked)
    return {"prompt": prompt, "chosen": body + marks[asked], "rejected": body + marks[other], "task": "ending"}


def length_pair(rng: random.Random) -> dict:
    thing = rng.choice(THINGS)
    subject = rng.choice(SUBJECTS)
    word, full = thing.capitalize() + ".", f"{subject.capitalize()} found the {thing} {rng.choice(PLACES)}."
    one = rng.random() < 0.5
    prompt = rng.choice(LENGTH_PROMPTS).format(subject=subject, length="one word" if one else "a full sentence")
    good, bad = (word, full) if one else (full, word)
    return {"prompt": prompt, "chosen": good, "rejected": bad, "task": "length"}


def main() -> None:
    rng = random.Random(0)
    makers = (case_pair, ending_pair, length_pair)
    rows = [makers[i % 3](rng) for i in range(3000)]
    out = Path(__file__).resolve().parents[1] / "rmdata" / "resources" / "data" / "tiny-prefs.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} pairs to {out}")


if __name__ == "__main__":
    main()
