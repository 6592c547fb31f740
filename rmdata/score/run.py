"""``rmdata score``: validate the input, load the model, score block by block into a resumable dataset dir.

Order of effects: every check that can refuse (the model directory, every input record under the default
``--on-error fail``, the output directory) runs before anything is written, so a refused run leaves no
output behind. Then each block of ``shard_rows`` input rows (``rmdata.score.shards``) is tokenized,
folded for duplicates, scored (``rmdata.score.engine``) and committed; the card is written last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rmdata.data.drops import Drop
from rmdata.data.stream import ScanReport, scan, stream
from rmdata.dataset_dir import DATA_DIR, check_replaceable, read_marker, save_arrow_copy, write_marker
from rmdata.errors import RmdataError
from rmdata.io import write_jsonl
from rmdata.model.loading import ScoringModel, load_scoring_model
from rmdata.score.config import ScoreConfig
from rmdata.score.dedup import unique_rows
from rmdata.score.engine import resolve_batch_tokens, resolve_layout, score_sequences
from rmdata.score.output import scored_frame, write_card
from rmdata.score.progress import ScoreProgress
from rmdata.score.sequences import conversation_columns, encode_conversations
from rmdata.score.shards import Manifest, blocks, content_digest


@dataclass
class ScoreResult:
    output: Path
    rows: int
    scored: int  # sequences run through the model by this process (resumed shards excluded)
    duplicates: int
    truncated: int
    resumed_rows: int
    invalid: int
    seconds: float
    model: ScoringModel
    layout: str
    manifest: dict[str, Any]


def input_fingerprint(report: ScanReport) -> str:
    """sha256 over each input file's name and size and the record counts (content is checked per shard)."""
    parts = [[Path(f).name, Path(f).stat().st_size] for info in report.inputs for f in info.files]
    payload = json.dumps([parts, report.records, report.valid_rows, report.formats])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def score(cfg: ScoreConfig, command: str, *, show_progress: bool = True) -> ScoreResult:
    """Run one scoring job per ``cfg``; see the module docstring for the order of effects."""
    model = load_scoring_model(cfg.model, device=cfg.device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    drops: list[Drop] = []
    if cfg.on_error not in ("fail", "skip"):
        raise RmdataError(f"--on-error {cfg.on_error!r}: use fail or skip")
    report = scan(cfg.inputs, on_error=cfg.on_error, on_drop=drops.append)  # type: ignore[arg-type]
    if report.kind != "corpus":
        raise RmdataError(
            f"{', '.join(cfg.inputs)} holds preference pairs; `rmdata score` scores single responses: evaluate "
            "pairs with `rmdata eval`, or give prompt/response rows"
        )
    if report.valid_rows == 0:
        raise RmdataError(f"{', '.join(cfg.inputs)}: none of the {report.records} records is valid; nothing to score")
    layout = resolve_layout(cfg.layout, model.device)
    max_length = cfg.max_length or model.context_length
    batch_tokens = resolve_batch_tokens(cfg.batch_tokens, model.device)
    out = Path(cfg.output)
    check_replaceable(out, ["scores"], flag="--no-resume")
    identity = _identity(cfg, model, report, layout, max_length, batch_tokens, command)
    manifest = Manifest.open(out, identity, resume=cfg.resume and read_marker(out) is not None)
    if not cfg.resume and out.exists():
        for name in (DATA_DIR, "manifest.json", "README.md", "rejects.jsonl"):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    _create_marked(out, model.fingerprint)
    if drops:
        write_jsonl(out / "rejects.jsonl", (d.to_json() for d in drops))
    expected = -(-report.valid_rows // cfg.shard_rows)
    manifest.remove_stale(expected)

    totals = {"rows": 0, "scored": 0, "duplicates": 0, "truncated": 0, "tokens": 0}
    resumed = scored_now = 0
    start = time.perf_counter()
    columns: list[str] = []
    with ScoreProgress(report.valid_rows, enabled=show_progress) as progress:
        for index, block in enumerate(blocks(stream(report, batch_rows=cfg.shard_rows), cfg.shard_rows)):
            ids = block["response_id"].to_list()
            digest = content_digest(ids)
            entry = manifest.committed(index, digest)
            if entry is None:
                entry, arrays = _score_block(model, block, ids, max_length, batch_tokens, layout, progress)
                frame = scored_frame(block, *arrays, model.fingerprint)
                manifest.commit(index, frame, {"digest": digest, **entry})
                scored_now += entry["scored"]
                columns = frame.columns
            else:
                resumed += entry["rows"]
                progress.skip(entry["rows"])
            for key in totals:
                totals[key] += entry[key]
    manifest.data.update(totals=totals, resumed_rows=resumed, complete=True)
    manifest.save()
    if not columns:  # every shard was resumed
        import polars as pl

        columns = pl.scan_parquet(out / DATA_DIR / "*.parquet").collect_schema().names()
    write_card(out, manifest.data, columns)
    if cfg.save_to_disk:
        save_arrow_copy(out, Path(cfg.save_to_disk))
    return ScoreResult(
        output=out,
        rows=totals["rows"],
        scored=scored_now,
        duplicates=totals["duplicates"],
        truncated=totals["truncated"],
        resumed_rows=resumed,
        invalid=report.invalid,
        seconds=time.perf_counter() - start,
        model=model,
        layout=layout,
        manifest=manifest.data,
    )


def _create_marked(out: Path, fingerprint: str) -> None:
    """Make ``out`` (marker and ``data/``) appear at once: built beside it and renamed, so a kill never leaves
    an unmarked directory that a re-run would refuse to touch."""
    if read_marker(out) is not None:
        (out / DATA_DIR).mkdir(exist_ok=True)
        return
    tmp = out.parent / f".{out.name}.new-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / DATA_DIR).mkdir(parents=True)
    write_marker(tmp, "scores", model=fingerprint)
    if out.exists():
        out.rmdir()  # check_replaceable let it through: it is empty
    os.rename(tmp, out)


def _score_block(
    model: ScoringModel,
    block: Any,
    ids: list[str],
    max_length: int,
    batch_tokens: int,
    layout: str,
    progress: ScoreProgress,
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Tokenize, fold duplicates, score one block: its counts, and rewards, num_tokens, truncated per row."""
    first, inverse = unique_rows(ids)
    prompts, responses, sources = conversation_columns(block[first.tolist()])
    seqs = encode_conversations(
        model.tokenizer, prompts, responses, sources, max_length=max_length, reward_token_id=model.reward_token_id
    )
    rewards = score_sequences(model, seqs.tokens, batch_tokens=batch_tokens, layout=layout, progress=progress.scored)
    progress.skip(len(ids) - len(first))
    lengths = seqs.lengths
    truncated = seqs.truncated[inverse]
    counts = {
        "rows": len(ids),
        "scored": len(first),
        "duplicates": len(ids) - len(first),
        "truncated": int(truncated.sum()),
        "tokens": int(lengths[inverse].sum()),
    }
    return counts, (rewards[inverse], lengths[inverse].astype(np.int32), truncated)


def _identity(
    cfg: ScoreConfig,
    model: ScoringModel,
    report: ScanReport,
    layout: str,
    max_length: int,
    batch_tokens: int,
    command: str,
) -> dict[str, Any]:
    settings = {
        "max_length": max_length,
        "batch_tokens": batch_tokens,
        "shard_rows": cfg.shard_rows,
        "layout": layout,
        "on_error": cfg.on_error,
        "dtype": str(model.dtype).removeprefix("torch."),
        "device": model.device.type,
    }
    settings["fingerprint"] = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "kind": "scores",
        "command": command,
        "config": asdict(cfg),
        "model": {
            "path": str(model.path),
            "fingerprint": model.fingerprint,
            "kind": model.kind,
            "architecture": model.architecture,
            "rule": model.rule,
            "dtype": settings["dtype"],
            "device": settings["device"],
            "attention": model.attention.name,
        },
        "input": {
            "paths": [str(p) for p in cfg.inputs],
            "fingerprint": input_fingerprint(report),
            "formats": report.formats,
            "records": report.records,
            "valid_rows": report.valid_rows,
            "invalid": report.invalid,
        },
        "settings": settings,
    }
