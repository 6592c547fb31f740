"""Regenerate rmdata/resources/data/tiny-corpus.jsonl, the multi-response corpus of the end-to-end demo.

`rmdata score builtin:tiny-corpus` scores it with the demo reward model (`rmdata train`, trained on
tiny-prefs.jsonl, see make_tiny_prefs.py), then `rmdata filter` / `rmdata build-dpo` curate it. Each record
is one prompt of a tiny-prefs task family (same constraint words and vocabulary, never a prompt of the
training set) with four responses, `multi-response` format (`prompt`, `responses`, plus `task` and
`follows`, carried through as columns).
Each prompt has four responses: two follow its constraint and two break it, and within each half they
differ in something the prompt does not ask about, so a reward model that learned the constraint ranks both
followers above both breakers:
- `case` ("... in uppercase/lowercase: SENTENCE"): the sentence in the asked case and in the other case,
  each ending with "." and with "!".
- `ending` ("Describe the THING PLACE, and end with MARK."): "The THING is ADJ" with the asked mark
  and with the other mark, for two adjectives.
- `length` ("What did SUBJECT find PLACE? Answer in one word / a full sentence."): one word and a full
  sentence, for two things.
tiny-prefs has too few distinct ending and length prompts to hold any out, so those two families use new
templates around the same constraint words.

`follows` lists, per response, whether it follows the prompt's constraint. Responses are shuffled per
record, seeded, so position says nothing.

Run: python tools/make_tiny_corpus.py  (deterministic, seed 1)
"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_prefs import CASE_PROMPTS, PLACES, SUBJECTS, THINGS, sentence  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "rmdata" / "resources" / "data"
PROMPTS = 200
ADJECTIVES = ("old", "bright", "small", "heavy", "strange", "lovely")
# tiny-prefs has only 120 ending and 32 length prompts, all used in training: these templates keep the
# constraint words the model learned ("end with a question mark", "answer in one word") in new sentences
ENDING_PROMPTS = (
    "Describe the {thing} {place}, and end with {mark}.",
    "Say something about a {thing} {place}. Finish with {mark}.",
)
LENGTH_PROMPTS = (
    "What did {subject} find {place}? Answer in {length}.",
    "Tell me what {subject} saw {place}, in {length}.",
)


def case_record(rng: random.Random) -> dict:
    text = sentence(rng)
    upper = rng.random() < 0.5
    prompt = rng.choice(CASE_PROMPTS).format(case="uppercase" if upper else "lowercase", sentence=text + ".")
    asked, other = (str.upper, str.lower) if upper else (str.lower, str.upper)
    responses = [asked(text + "."), asked(text + "!"), other(text + "."), other(text + "!")]
    return {"prompt": prompt, "responses": responses, "task": "case"}


def ending_record(rng: random.Random) -> dict:
    marks = {"a question mark": "?", "an exclamation mark": "!"}
    asked, other = rng.sample(sorted(marks), 2)
    thing = rng.choice(THINGS)
    first, second = (f"The {thing} is {adjective}" for adjective in rng.sample(ADJECTIVES, 2))
    prompt = rng.choice(ENDING_PROMPTS).format(thing=thing, mark=asked, place=rng.choice(PLACES))
    responses = [first + marks[asked], second + marks[asked], first + marks[other], second + marks[other]]
    return {"prompt": prompt, "responses": responses, "task": "ending"}


def length_record(rng: random.Random) -> dict:
    subject, place = rng.choice(SUBJECTS), rng.choice(PLACES)
    things = rng.sample(THINGS, 2)
    words = [t.capitalize() + "." for t in things]
    fulls = [f"{subject.capitalize()} found the {t} {place}." for t in things]
    one = rng.random() < 0.5
    prompt = rng.choice(LENGTH_PROMPTS).format(
        subject=subject, place=place, length="one word" if one else "a full sentence"
    )
    good, bad = (words, fulls) if one else (fulls, words)
    return {"prompt": prompt, "responses": good + bad, "task": "length"}


def main() -> None:
    training = {json.loads(line)["prompt"] for line in (DATA / "tiny-prefs.jsonl").read_text().splitlines()}
    rng = random.Random(1)
    makers = (case_record, ending_record, length_record)
    records, seen = [], set(training)
    for _ in range(100 * PROMPTS):
        if len(records) == PROMPTS:
            break
        record = makers[len(records) % 3](rng)
        if record["prompt"] in seen or len(set(record["responses"])) < 4:
            continue  # disjoint from the training prompts and from each other; four distinct responses
        seen.add(record["prompt"])
        order = list(range(4))
        rng.shuffle(order)
        record["follows"] = [i < 2 for i in order]
        record["responses"] = [record["responses"][i] for i in order]
        records.append(record)
    else:
        raise SystemExit(f"only {len(records)} distinct prompts outside the training set; add templates")
    out = DATA / "tiny-corpus.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(f"wrote {len(records)} prompts x 4 responses to {out}")


if __name__ == "__main__":
    main()
