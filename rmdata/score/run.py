"""``rmdata score``: validate the input, load the model, score block by block into a resumable dataset dir.

Order of effects: every check that can refuse (the model directory, every input record under the default
``--on-error fail``, the output directory) runs before anything is written, so a refused run leaves no
output behind. Then each block of ``shard_rows`` input rows (``rmdata.score.shards``) is tokenized,
folded for duplicates run-wide (``rmdata.score.dedup``), scored (``rmdata.score.engine``) and committed; the
manifest's totals and the card are written last. An input file whose size or modification time changes
after the first pass stops the run before its next commit.

Under ``torchrun`` (or SLURM) every rank runs the same checks; :func:`rmdata.distributed.agree` is the check
point after each phase, so when one rank refuses or fails, every rank raises instead of waiting for it.
Rank 0 alone prepares the output directory, writes ``rejects.jsonl``, merges the manifest, writes the card
and the ``--save-to-disk`` copy; each rank scores and commits its own blocks (``shards.rank_of``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rmdata.data.drops import Drop
from rmdata.data.stream import ScanReport, scan, stream
from rmdata.dataset_dir import DATA_DIR, check_replaceable, read_marker, save_arrow_copy, write_marker
from rmdata.distributed import World, agree, init_distributed, launch_ranks
from rmdata.errors import RmdataError
from rmdata.io import write_jsonl
from rmdata.model.loading import ScoringModel, load_scoring_model
from rmdata.score.blocks import BlockScorer
from rmdata.score.config import ScoreConfig
from rmdata.score.engine import resolve_batch_tokens, resolve_layout, score_sequences
from rmdata.score.output import SCORED, scored_frame, write_card
from rmdata.score.progress import ScoreProgress
from rmdata.score.reuse import ReuseStore, check_reuse_dirs, load_store, score_key
from rmdata.score.sequences import encode_conversations
from rmdata.score.shards import PARTS_DIR, Manifest, blocks, content_digest, rank_of

TOTALS = ("rows", "scored", "reused", "duplicates", "copied", "truncated", "tokens")


@dataclass
class ScoreResult:
    output: Path
    rows: int
    scored: int  # sequences run through the model by this run, all ranks (resumed shards excluded)
    reused: int  # distinct rows whose reward was copied from a --reuse directory, run-wide
    duplicates: int  # rows that reused another row's score, run-wide
    truncated: int
    resumed_rows: int
    invalid: int
    seconds: float
    model: ScoringModel
    layout: str
    manifest: dict[str, Any]


@dataclass
class _Run:
    """Everything a run is, decided before anything is written."""

    cfg: ScoreConfig
    world: World
    model: ScoringModel
    report: ScanReport
    drops: list[Drop]
    layout: str
    max_length: int
    batch_tokens: int
    out: Path
    manifest: Manifest
    stamps: list[tuple[str, int, int]]  # (path, size, mtime_ns) of every input file the first pass read
    store: ReuseStore  # rewards of the --reuse directories under this run's score key

    @property
    def expected(self) -> int:
        return -(-self.report.valid_rows // self.cfg.shard_rows)


def input_fingerprint(report: ScanReport) -> str:
    """sha256 over each input file's name and size and the record counts (content is checked per shard)."""
    parts = [[Path(f).name, Path(f).stat().st_size] for info in report.inputs for f in info.files]
    payload = json.dumps([parts, report.records, report.valid_rows, report.formats])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def score(cfg: ScoreConfig, command: str, *, show_progress: bool = True, strict_reuse: bool = True) -> ScoreResult:
    """Run one scoring job per ``cfg`` on this process's rank; see the module docstring for the order of effects.

    ``strict_reuse=False``: a ``--reuse`` directory without this model's scores is skipped instead of refused
    (a several-model run, where a directory need only hold some of the models).
    """
    world = join_ranks(cfg.device)
    run: _Run | None = None
    error: Exception | None = None
    try:
        run = _prepare(cfg, command, world, strict_reuse)
    except Exception as err:
        error = err
    agree(world, error)
    assert run is not None
    _on_main(run, _start_output)
    start = time.perf_counter()
    local: dict[str, Any] = {}
    try:
        local = _score_owned(run, show_progress=show_progress and world.is_main)
    except Exception as err:
        error = err
        if world.distributed:
            with contextlib.suppress(OSError):  # the check point below tells the others in any case
                run.manifest.note_stopped(str(err))
    stats = agree(world, error, local)
    totals = _on_main(run, lambda r: _finish(r, stats))
    return ScoreResult(
        output=run.out,
        rows=totals["rows"],
        scored=sum(s["scored"] for s in stats),
        reused=totals["reused"],
        duplicates=totals["duplicates"],
        truncated=totals["truncated"],
        resumed_rows=sum(s["resumed"] for s in stats),
        invalid=run.report.invalid,
        seconds=time.perf_counter() - start,
        model=run.model,
        layout=run.layout,
        manifest=run.manifest.data,
    )


def join_ranks(device: str) -> World:
    """This process's place in a torchrun/SLURM launch (world size 1 without one): ``cuda:LOCAL_RANK`` on
    CUDA; on CPU one torch thread per rank unless ``OMP_NUM_THREADS`` says otherwise."""
    launched = launch_ranks()
    if launched is None or launched[1] == 1:
        return World()
    import torch

    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(launched[2])
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    return init_distributed("cuda" if cuda else "cpu")


def _on_main(run: _Run, step: Any) -> Any:
    """``step(run)`` on rank 0, then a check point; every rank gets rank 0's result."""
    result, error = None, None
    if run.world.is_main:
        try:
            result = step(run)
        except Exception as err:
            error = err
    return agree(run.world, error, result)[0]


def _prepare(cfg: ScoreConfig, command: str, world: World, strict_reuse: bool = True) -> _Run:
    """Every check that can refuse, in order; nothing is written."""
    model = load_scoring_model(cfg.model, device=cfg.device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    drops: list[Drop] = []
    if cfg.on_error not in ("fail", "skip"):
        raise RmdataError(f"--on-error {cfg.on_error!r}: use fail or skip")
    if cfg.shard_rows < 1:
        raise RmdataError(f"shard_rows={cfg.shard_rows}: a shard needs at least one row")
    on_drop = drops.append if world.is_main else None
    report = scan(cfg.inputs, on_error=cfg.on_error, on_drop=on_drop)  # type: ignore[arg-type]
    if report.kind != "corpus":
        raise RmdataError(
            f"{', '.join(cfg.inputs)} holds preference pairs; `rmdata score` scores single responses: evaluate "
            "pairs with `rmdata eval`, or give prompt/response rows"
        )
    if report.valid_rows == 0:
        raise RmdataError(f"{', '.join(cfg.inputs)}: none of the {report.records} records is valid; nothing to score")
    clash = next((c for c in SCORED if c in report.carried and f"{c}_input" in report.carried), None)
    if clash is not None:
        raise RmdataError(
            f"{', '.join(cfg.inputs)}: has both {clash} and {clash}_input columns; the output's {clash} is the score "
            f"and an input {clash} is kept as {clash}_input: rename one of the two input columns"
        )
    if cfg.max_length is not None and cfg.max_length < 2:
        raise RmdataError(f"--max-length {cfg.max_length}: a scored sequence needs at least 2 tokens")
    if cfg.save_to_disk:
        check_replaceable(Path(cfg.save_to_disk), ["arrow"], flag="--save-to-disk")
    layout = resolve_layout(cfg.layout, model.device)
    max_length = cfg.max_length or model.context_length
    batch_tokens = resolve_batch_tokens(cfg.batch_tokens, model.device)
    _probe(model, max_length, batch_tokens, layout)
    out = Path(cfg.output)
    check_replaceable(out, ["scores"], flag="--no-resume")
    identity = _identity(cfg, model, report, layout, max_length, batch_tokens, command)
    key = score_key(identity)
    if strict_reuse:
        check_reuse_dirs(cfg.reuse, [key])
    store = load_store(cfg.reuse, key)
    resume = cfg.resume and read_marker(out) is not None
    manifest = Manifest.open(out, identity, resume=resume, rank=world.rank, world_size=world.world_size)
    return _Run(
        cfg, world, model, report, drops, layout, max_length, batch_tokens, out, manifest, _stamps(report), store
    )


def _probe(model: ScoringModel, max_length: int, batch_tokens: int, layout: str) -> None:
    """One short conversation through the model before anything is written: ``--max-length`` too small to
    score anything, or a model whose scores are NaN or infinite (damaged weights), is refused with no output."""
    source = "a test conversation (user: Hello, assistant: Hi)"
    seqs = encode_conversations(
        model.tokenizer,
        [[{"role": "user", "content": "Hello"}]],
        ["Hi"],
        [source],
        max_length=max_length,
        reward_token_id=model.reward_token_id,
    )
    score_sequences(model, seqs.tokens, batch_tokens=batch_tokens, layout=layout, sources=[source])


def _start_output(run: _Run) -> None:
    """Rank 0: replace (``--no-resume``) or create the marked directory, write the rejects, clear a killed run's
    temporary files."""
    out = run.out
    if not run.cfg.resume and out.exists():
        for name in (DATA_DIR, PARTS_DIR, "manifest.json", "README.md", "rejects.jsonl"):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    _create_marked(out, run.model.fingerprint)
    if run.drops:
        write_jsonl(out / "rejects.jsonl", (d.to_json() for d in run.drops))
    run.manifest.remove_stale(run.expected)


def _score_owned(run: _Run, *, show_progress: bool) -> dict[str, Any]:
    """Score and commit this rank's blocks in order; what this rank did (rows scored, resumed, the columns)."""
    cfg, world, manifest = run.cfg, run.world, run.manifest
    size = cfg.shard_rows
    owned_rows = sum(
        min(size, run.report.valid_rows - k * size)
        for k in range(run.expected)
        if rank_of(k, world.world_size) == world.rank
    )
    label = "score" if not world.distributed else f"score (rank {world.rank} of {world.world_size})"
    done = {"scored": 0, "resumed": 0, "columns": []}
    digests: list[str] = []
    with ScoreProgress(owned_rows, label, enabled=show_progress) as progress:
        scorer = BlockScorer(run.model, run.max_length, run.batch_tokens, run.layout, manifest, progress, run.store)
        for index, block in enumerate(blocks(stream(run.report, batch_rows=size), size)):
            ids = block["response_id"].to_list()
            digest = content_digest(ids)
            digests.append(digest)
            owned = rank_of(index, world.world_size) == world.rank
            entry = manifest.committed(index, digest) if owned else None
            if entry is not None:
                done["resumed"] += entry["rows"]
                progress.skip(entry["rows"])
            if not owned or entry is not None:
                scorer.skip(index, ids)
                continue
            counts, (rewards, num_tokens, truncated) = scorer.score(index, block, ids, digests)
            frame = scored_frame(block, rewards, num_tokens, truncated, run.model.fingerprint)
            _check_unchanged(run)
            manifest.commit(index, frame, {"digest": digest, **counts})
            done["scored"] += counts["scored"]
            done["columns"] = frame.columns
    if world.distributed:  # wait for the other ranks on the file system: a collective would time out (30 min)
        for index, digest in enumerate(digests):
            manifest.wait_committed(index, digest, poll_s=0.5)
    return done


def _finish(run: _Run, stats: list[dict[str, Any]]) -> dict[str, int]:
    """Rank 0, once every rank is done: the manifest (parts merged, totals), the card, the Arrow copy."""
    manifest = run.manifest
    manifest.merge_parts()
    shards = manifest.data["shards"]
    missing = [k for k in range(run.expected) if str(k) not in shards]
    if missing:
        raise RmdataError(f"{run.out}: shards {missing[:5]} are not listed after every rank finished; this is a bug")
    totals = {key: sum(int(shards[str(k)].get(key, 0)) for k in range(run.expected)) for key in TOTALS}
    resumed = sum(s["resumed"] for s in stats)
    manifest.data.update(
        totals=totals, resumed_rows=resumed, reused_from=run.store.sources, ranks=run.world.world_size, complete=True
    )
    manifest.save()
    columns = next((s["columns"] for s in stats if s["columns"]), None)
    if columns is None:  # every shard was resumed
        import polars as pl

        columns = pl.scan_parquet(run.out / DATA_DIR / "*.parquet").collect_schema().names()
    write_card(run.out, manifest.data, columns)
    if run.cfg.save_to_disk:
        save_arrow_copy(run.out, Path(run.cfg.save_to_disk))
    return totals


def _stamps(report: ScanReport) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file the first pass read."""
    files = [Path(f) for info in report.inputs for f in info.files]
    return [(str(f), (st := f.stat()).st_size, st.st_mtime_ns) for f in files]


def _check_unchanged(run: _Run) -> None:
    """Refuse to commit rows of an input that changed since the first pass validated it, naming the file."""
    changed = [then[0] for now, then in zip(_stamps(run.report), run.stamps, strict=True) if now != then]
    if changed:
        raise RmdataError(
            f"{changed[0]}: changed while rmdata read it (its size or modification time differs from the first "
            "pass); the shards committed so far are kept: run the same command again once it is complete"
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
        "dedup": "run-wide",  # copies of a (prompt, response) anywhere in the run share its first score
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
