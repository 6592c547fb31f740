"""What ``loss_study.py`` and ``vs_trl.py`` share: one fixed train / held-out split, recipes, per-pair scores.

The split: the pairs of the input (``builtin:tiny-prefs`` by default, any pairs file with ``--data``; a seeded
sample of ``POOL_FACTOR`` x the pairs needed when the file is larger) are tokenized once with rmdata's
``tokenize_pairs`` (the backbone's tokenizer and chat template, its reward token) and pairs that do not fit
``max_length`` are dropped and counted. Whole prompts are then held out in a seeded order until ``n_eval`` pairs
are held out, and ``n_train`` pairs are sampled (seeded) from the other prompts. Both sets are written as
``pairs`` JSONL files that every run trains or evaluates on, whatever its own seed, and are identified by
content ids (``prompt_id:chosen_id:rejected_id``, ``rmdata.data.schema``).

Backbones: ``None`` = rmdata's tiny from-config model and byte-level tokenizer (``recipes`` ``tiny-cpu``,
offline, no weights); a directory = a Hugging Face model directory such as the converted SmolLM2-135M-Instruct,
trained with LoRA as ``recipes/smollm2-135m-lora.yaml`` says.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from rmdata.config import Recipe
    from rmdata.tokens.reward_token import RewardToken
    from rmdata.tokens.templates import TokenizedPairs
    from rmdata.train.data import PairSplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "builtin:tiny-prefs"
BACKBONE_RECIPE = ROOT / "recipes" / "smollm2-135m-lora.yaml"
POOL_FACTOR = 6  # records tokenized per pair needed (a seeded sample of the input when it is larger)


@dataclass
class SplitFiles:
    """The benchmark's fixed split, written as pairs files, with the content ids of each side."""

    train: Path
    eval: Path
    train_ids: list[str]
    eval_ids: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def pair_ids(pairs: TokenizedPairs) -> list[str]:
    """Content ids ``prompt_id:chosen_id:rejected_id`` of tokenized pairs, in their order."""
    return [f"{p}:{c}:{r}" for p, c, r in zip(pairs.prompt_id, pairs.chosen_id, pairs.rejected_id, strict=True)]


def id_digest(ids: list[str]) -> str:
    """Order-free 16-hex digest of a set of content ids (two runs trained the same pairs iff equal)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def token_digest(pairs: TokenizedPairs) -> str:
    """Digest of every pair's chosen and rejected token ids, in content-id order."""
    h = hashlib.sha256()
    for _, i in sorted((pid, i) for i, pid in enumerate(pair_ids(pairs))):
        for seq in (pairs.chosen[i], pairs.rejected[i]):
            h.update(np.asarray(seq, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()[:16]


def tokenizer_and_reward(backbone: str | None) -> tuple[Any, RewardToken]:
    """The backbone's tokenizer and reward token, resolved as ``rmdata train`` resolves them."""
    from rmdata.model.reward_model import load_tokenizer
    from rmdata.tokens.reward_token import resolve_reward_token

    recipe = base_recipe(backbone, [])
    tokenizer = load_tokenizer(recipe.model)
    return tokenizer, resolve_reward_token(tokenizer, recipe.model.reward_token, recipe.model.reward_token_id)


def tokenize(rows: Any, tokenizer: Any, reward: RewardToken, max_length: int) -> TokenizedPairs:
    from rmdata.tokens.templates import tokenize_pairs

    return tokenize_pairs(rows, tokenizer, max_length=max_length, reward_token=reward)


def make_split(
    data: str | None,
    out_dir: Path,
    *,
    tokenizer: Any,
    reward: RewardToken,
    max_length: int,
    n_train: int,
    n_eval: int,
    seed: int,
) -> SplitFiles:
    """Write ``train.jsonl`` and ``eval.jsonl`` under ``out_dir`` (see the module docstring)."""
    from rmdata.config import resolve_data_path
    from rmdata.data.load import load_dataset_records
    from rmdata.errors import RmdataError

    source = data or DEFAULT_DATA
    loaded = load_dataset_records([resolve_data_path(source)])
    if loaded.kind != "pairs":
        raise RmdataError(f"--data {source}: holds {loaded.format} records; the benchmark needs preference pairs")
    rng = np.random.default_rng(seed)
    frame = loaded.frame
    pool = POOL_FACTOR * (n_train + n_eval)
    if frame.height > pool:  # tokenize a seeded sample only: a big file need not be tokenized whole
        frame = frame[sorted(rng.permutation(frame.height)[:pool].tolist())]
    pairs = tokenize(frame, tokenizer, reward, max_length)
    by_prompt: dict[str, list[int]] = {}
    for i, pid in enumerate(pairs.prompt_id):
        by_prompt.setdefault(pid, []).append(i)
    prompts = sorted(by_prompt)
    held: list[int] = []
    rest: list[int] = []
    for k in rng.permutation(len(prompts)):
        (held if len(held) < n_eval else rest).extend(by_prompt[prompts[int(k)]])
    held = held[:n_eval]
    train = sorted(rng.permutation(rest)[:n_train].tolist()) if rest else []
    if len(train) < n_train or len(held) < n_eval:
        raise RmdataError(
            f"--data {source}: {len(pairs)} pairs fit max_length={max_length} ({pairs.dropped or 'none dropped'}), "
            f"too few for {n_train} training + {n_eval} held-out pairs; lower --train-pairs/--eval-pairs or raise "
            "--max-length"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, units in (("train", train), ("eval", sorted(held))):
        path = out_dir / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for u in units:
                row = frame.row(pairs.row_index[u], named=True)
                record = {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}
                if row.get("margin") is not None:
                    record["margin"] = row["margin"]
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        files[name] = (path, [pair_ids(pairs)[u] for u in units])
    info = {
        "source": source,
        "records": loaded.records,
        "tokenized": frame.height,
        "fit_max_length": len(pairs),
        "dropped": dict(pairs.dropped),
        "train_pairs": len(train),
        "eval_pairs": len(held),
        "train_ids_digest": id_digest(files["train"][1]),
        "eval_ids_digest": id_digest(files["eval"][1]),
        "split_seed": seed,
    }
    return SplitFiles(files["train"][0], files["eval"][0], files["train"][1], files["eval"][1], info)


def base_recipe(backbone: str | None, overrides: list[str]) -> Recipe:
    """``tiny-cpu`` for no backbone, else ``recipes/smollm2-135m-lora.yaml`` pointed at ``backbone``."""
    from rmdata.config import load_recipe

    if backbone is None:
        return load_recipe("tiny-cpu", overrides)
    return load_recipe(BACKBONE_RECIPE, [f"model.name_or_path={backbone}", *overrides])


@dataclass
class PairScores:
    """Per-pair scores of one split, in the split's pair order."""

    chosen: np.ndarray
    rejected: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        return self.chosen - self.rejected


def score_split(model: torch.nn.Module, split: PairSplit, device: Any, autocast: Any) -> PairScores:
    """Every packed pair of ``split`` scored by the model (packed rows, as rmdata evaluates); NaN if not packed."""
    import torch

    n = len(split.pairs)
    chosen, rejected = np.full(n, np.nan), np.full(n, np.nan)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for row in split.plan.rows:
            with autocast:
                scores = model(split.batch(row).to(device)).float().cpu().numpy()
            chosen[list(row.units)] = scores[0::2]
            rejected[list(row.units)] = scores[1::2]
    model.train(was_training)
    return PairScores(chosen, rejected)


def calibration(margin: np.ndarray) -> dict[str, float]:
    """Held-out log-loss of P(chosen wins) = sigmoid(margin), and its Brier score."""
    log_loss = float(np.mean(np.logaddexp(0.0, -margin)))  # -log sigmoid(m), stable
    prob = 1.0 / (1.0 + np.exp(-margin))
    return {"log_loss": round(log_loss, 4), "brier": round(float(np.mean((1.0 - prob) ** 2)), 4)}


def score_range(scores: np.ndarray) -> dict[str, float]:
    """mean / std / max |s| of a set of scores."""
    return {
        "mean": round(float(scores.mean()), 4),
        "std": round(float(scores.std()), 4),
        "max_abs": round(float(np.abs(scores).max()), 4),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def peak_rss_mb() -> float:
    """This process's peak resident memory (``ru_maxrss``, KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
