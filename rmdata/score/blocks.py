"""One block of input rows -> its scored columns: fold duplicates, score what is new, copy what is not.

A block's rows fall in three kinds (``rmdata.score.dedup``): the first row of a content id seen for the first
time in the run (scored here, in the block's own batches), a later copy inside the block (folded onto that
row), and a row whose content id's home is an earlier block (copied from the home: from memory when this
process scored it, else read from the home's committed shard, waiting for its rank to commit it under
torchrun). Scoring runs before any wait, so a rank's model stays busy while an earlier block is committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from rmdata.data.row_keys import id_keys
from rmdata.errors import RmdataError
from rmdata.model.loading import ScoringModel
from rmdata.score.dedup import SharedScores, unique_rows
from rmdata.score.engine import score_sequences
from rmdata.score.progress import ScoreProgress
from rmdata.score.sequences import conversation_columns, encode_conversations
from rmdata.score.shards import Manifest

Columns = tuple[np.ndarray, np.ndarray, np.ndarray]  # reward float32, num_tokens int32, truncated bool; per row


@dataclass
class BlockScorer:
    """Scores blocks in increasing order; ``shared`` carries the run-wide duplicates between them."""

    model: ScoringModel
    max_length: int
    batch_tokens: int
    layout: str
    shared: SharedScores
    manifest: Manifest
    progress: ScoreProgress
    homes_known: set[int] = field(default_factory=set)  # blocks whose shared values are in ``shared``

    def score(
        self, index: int, block: pl.DataFrame, ids: list[str], digests: list[str]
    ) -> tuple[dict[str, Any], Columns]:
        """Counts of block ``index`` and its rows' columns; ``digests``: the content digest of every block so far."""
        first, inverse = unique_rows(ids)
        slots = self.shared.slots(id_keys([ids[i] for i in first]))
        home = self.shared.home_of(slots, index)
        copied = home < index
        new = np.flatnonzero(~copied)
        rewards = np.zeros(len(first), dtype=np.float32)
        lengths = np.zeros(len(first), dtype=np.int32)
        truncated = np.zeros(len(first), dtype=bool)
        if len(new):
            prompts, responses, sources = conversation_columns(block[first[new].tolist()])
            seqs = encode_conversations(
                self.model.tokenizer,
                prompts,
                responses,
                sources,
                max_length=self.max_length,
                reward_token_id=self.model.reward_token_id,
            )
            rewards[new] = score_sequences(
                self.model,
                seqs.tokens,
                batch_tokens=self.batch_tokens,
                layout=self.layout,
                progress=self.progress.scored,
            )
            lengths[new], truncated[new] = seqs.lengths, seqs.truncated
            homed = new[slots[new] >= 0]
            self.shared.store(slots[homed], rewards[homed], lengths[homed], truncated[homed])
        self.homes_known.add(index)
        self.progress.skip(len(ids) - len(new))
        if copied.any():
            for home_block in np.unique(home[copied]).tolist():
                self._read_home(home_block, digests[home_block])
            from_home = slots[copied]
            if not self.shared.known[from_home].all():
                raise RmdataError(
                    f"block {index}: a copied score is missing from its home shard; this is a bug in rmdata"
                )
            rewards[copied] = self.shared.reward[from_home]
            lengths[copied] = self.shared.num_tokens[from_home]
            truncated[copied] = self.shared.truncated[from_home]
        counts = {
            "rows": len(ids),
            "scored": len(new),
            "duplicates": len(ids) - len(new),
            "copied": int(copied[inverse].sum()),  # rows whose score came from an earlier shard
            "truncated": int(truncated[inverse].sum()),
            "tokens": int(lengths[inverse].astype(np.int64).sum()),
        }
        return counts, (rewards[inverse], lengths[inverse], truncated[inverse])

    def _read_home(self, index: int, digest: str) -> None:
        """Fill ``shared`` with the values of the ids whose home is block ``index``, from its committed shard."""
        if index in self.homes_known:
            return
        entry = self.manifest.wait_committed(index, digest)
        frame = pl.read_parquet(
            self.manifest.directory / entry["file"], columns=["response_id", "reward", "num_tokens", "truncated"]
        )
        slots = self.shared.slots(id_keys(frame["response_id"].to_list()))
        mine = np.flatnonzero(self.shared.home_of(slots, -1) == index)
        self.shared.store(
            slots[mine],
            frame["reward"].to_numpy()[mine],
            frame["num_tokens"].to_numpy()[mine],
            frame["truncated"].to_numpy()[mine],
        )
        self.homes_known.add(index)
