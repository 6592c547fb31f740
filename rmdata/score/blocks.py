"""One block of input rows -> its scored columns: fold duplicates, score what is new, copy what is not.

A block's rows fall in three kinds (``rmdata.score.dedup``): the first row of a content id seen for the first
time in the run (scored here, in the block's own batches), a later copy inside the block (folded onto that
row), and a row whose content id's home is an earlier block (copied from the home: from memory when this
process scored it, else read from the home's committed shard, waiting for its rank to commit it under
torchrun). A first row whose content id a ``--reuse`` directory holds under this run's score key
(``rmdata.score.reuse``) takes that reward instead of being scored. Blocks this process does not score
(another rank's, or one a killed run committed) still pass through :meth:`BlockScorer.skip`, so that the
run-wide ids stay complete. Scoring runs before any wait, so a rank's model stays busy while an earlier
block is committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from rmdata.errors import RmdataError
from rmdata.model.loading import ScoringModel
from rmdata.score.dedup import SeenIds, Values, id_keys, unique_rows
from rmdata.score.engine import score_sequences
from rmdata.score.progress import ScoreProgress
from rmdata.score.reuse import ReuseStore
from rmdata.score.sequences import conversation_columns, encode_conversations
from rmdata.score.shards import Manifest

Columns = tuple[np.ndarray, np.ndarray, np.ndarray]  # reward float32, num_tokens int32, truncated bool; per row


@dataclass
class BlockScorer:
    """Sees every block of the run in increasing order, scoring the ones :meth:`score` is called for."""

    model: ScoringModel
    max_length: int
    batch_tokens: int
    layout: str
    manifest: Manifest
    progress: ScoreProgress
    store: ReuseStore = field(default_factory=ReuseStore)  # rewards of earlier runs (``--reuse``)
    seen: SeenIds = field(default_factory=SeenIds)
    homes_known: set[int] = field(default_factory=set)  # blocks whose values are all in ``seen``

    def skip(self, index: int, ids: list[str]) -> None:
        """Block ``index`` is scored elsewhere: record its new ids (values read back when a copy needs them)."""
        first, _ = unique_rows(ids)
        keys = id_keys([ids[i] for i in first])
        self.seen.add(keys[self.seen.homes(keys) < 0], index)

    def score(
        self, index: int, block: pl.DataFrame, ids: list[str], digests: list[str]
    ) -> tuple[dict[str, Any], Columns]:
        """Counts of block ``index`` and its rows' columns; ``digests``: the content digest of every block so far."""
        first, inverse = unique_rows(ids)
        keys = id_keys([ids[i] for i in first])
        home = self.seen.homes(keys)
        copied = home >= 0
        new = np.flatnonzero(~copied)
        values = Values.empty(len(first))
        found, stored = self.store.lookup(keys[new])
        values.put(new[found], stored.take(np.flatnonzero(found)))
        fresh = new[~found]
        if len(fresh):
            prompts, responses, sources = conversation_columns(block[first[fresh].tolist()])
            seqs = encode_conversations(
                self.model.tokenizer,
                prompts,
                responses,
                sources,
                max_length=self.max_length,
                reward_token_id=self.model.reward_token_id,
            )
            rewards = score_sequences(
                self.model,
                seqs.tokens,
                batch_tokens=self.batch_tokens,
                layout=self.layout,
                progress=self.progress.scored,
                sources=sources,
            )
            values.put(fresh, Values(rewards, seqs.lengths.astype(np.int32), seqs.truncated))
        self.progress.skip(len(ids) - len(fresh))
        if copied.any():
            for home_block in np.unique(home[copied]).tolist():
                self._read_home(home_block, digests[home_block])
            known, home_values = self.seen.values(keys[copied])
            if not known.all():
                raise RmdataError(
                    f"block {index}: a copied score is missing from its home shard; this is a bug in rmdata"
                )
            values.put(np.flatnonzero(copied), home_values)
        self.seen.add(keys[new], index, values.take(new))
        self.homes_known.add(index)
        counts = {
            "rows": len(ids),
            "scored": len(fresh),
            "reused": len(new) - len(fresh),  # distinct rows whose reward came from a --reuse directory
            "duplicates": len(ids) - len(new),
            "copied": int(copied[inverse].sum()),  # rows whose score came from an earlier shard
            "truncated": int(values.truncated[inverse].sum()),
            "tokens": int(values.num_tokens[inverse].astype(np.int64).sum()),
        }
        return counts, (values.reward[inverse], values.num_tokens[inverse], values.truncated[inverse])

    def _read_home(self, index: int, digest: str) -> None:
        """Fill ``seen`` with the values of the ids whose home is block ``index``, from its committed shard."""
        if index in self.homes_known:
            return
        entry = self.manifest.wait_committed(index, digest)
        frame = pl.read_parquet(
            self.manifest.directory / entry["file"], columns=["response_id", "reward", "num_tokens", "truncated"]
        )
        values = Values(frame["reward"].to_numpy(), frame["num_tokens"].to_numpy(), frame["truncated"].to_numpy())
        self.seen.fill(id_keys(frame["response_id"].to_list()), values, index)
        self.homes_known.add(index)
