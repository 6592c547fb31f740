"""`rmdata score` and `rmdata eval`: the scoring engine over corpora and preference pairs."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rmdata.cli.app import app, quiet_transformers, strict_json
from rmdata.errors import RmdataError
from rmdata.score.config import HELP as SCORE_HELP
from rmdata.score.config import ScoreConfig as _ScoreDefaults

_SCORE = _ScoreDefaults()

# Options `score` and `eval` share, declared once.
ModelOption = Annotated[str, typer.Option("--model", "-m", help=SCORE_HELP["model"])]
OnErrorOption = Annotated[str, typer.Option("--on-error", help=SCORE_HELP["on_error"])]
MaxLengthOption = Annotated[int | None, typer.Option("--max-length", show_default=False, help=SCORE_HELP["max_length"])]
BatchTokensOption = Annotated[
    int | None, typer.Option("--batch-tokens", show_default=False, help=SCORE_HELP["batch_tokens"])
]
DeviceOption = Annotated[str, typer.Option("--device", help=SCORE_HELP["device"])]
DtypeOption = Annotated[str, typer.Option("--dtype", help=SCORE_HELP["dtype"])]
TrustRemoteCodeOption = Annotated[bool, typer.Option("--trust-remote-code", help=SCORE_HELP["trust_remote_code"])]


@app.command()
def score(
    inputs: Annotated[list[str], typer.Argument(show_default=False, help=SCORE_HELP["inputs"])],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help=SCORE_HELP["models"])] = None,
    output: Annotated[str, typer.Option("--output", "-o", help=SCORE_HELP["output"])] = _SCORE.output,
    on_error: OnErrorOption = _SCORE.on_error,
    max_length: MaxLengthOption = None,
    batch_tokens: BatchTokensOption = _SCORE.batch_tokens,
    device: DeviceOption = _SCORE.device,
    dtype: DtypeOption = _SCORE.dtype,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help=SCORE_HELP["resume"])] = _SCORE.resume,
    save_to_disk: Annotated[
        str | None, typer.Option("--save-to-disk", show_default=False, help=SCORE_HELP["save_to_disk"])
    ] = None,
    trust_remote_code: TrustRemoteCodeOption = False,
    shard_rows: Annotated[int, typer.Option("--shard-rows", help=SCORE_HELP["shard_rows"])] = _SCORE.shard_rows,
    reuse: Annotated[list[str] | None, typer.Option("--reuse", show_default=False, help=SCORE_HELP["reuse"])] = None,
) -> None:
    """Score responses with a reward model into a Hugging Face dataset directory (resumable, exact).

    Each valid input row gives one output row, in input order: prompt_id, response_id, prompt, response,
    reward, num_tokens, truncated, model, and every input column. Re-running after a kill resumes.
    Under torchrun the ranks split the shards and give the single-process rows (docs/scale-out.md).
    """
    import shlex

    from rmdata.paths import check_output_paths
    from rmdata.score.config import ScoreConfig
    from rmdata.score.run import score as run_score
    from rmdata.score.several import parse_models

    models = model or [_SCORE.model]
    outputs = [("--output", output), ("--save-to-disk", save_to_disk)]
    reads = [*(("input", p) for p in inputs), *(("--model", d) for _, d in parse_models(models))]
    check_output_paths(outputs, reads)
    quiet_transformers()
    cfg = ScoreConfig(
        inputs=inputs,
        model=models[0],
        output=output,
        on_error=on_error,
        max_length=max_length,
        batch_tokens=batch_tokens,
        device=device,
        dtype=dtype,
        resume=resume,
        save_to_disk=save_to_disk,
        trust_remote_code=trust_remote_code,
        shard_rows=shard_rows,
        reuse=reuse or [],
    )
    from rmdata.distributed import is_main_process  # under torchrun only rank 0 prints, errors included

    if len(models) > 1:
        _score_several(cfg, models)
        return
    if parse_models(models)[0][1] != models[0]:
        raise RmdataError(
            f"--model {models[0]}: NAME=DIR names a reward_<name> column of a several-model table; one model "
            "writes `reward`: give just the directory"
        )
    try:
        result = run_score(cfg, "rmdata " + shlex.join(sys.argv[1:]), show_progress=sys.stderr.isatty())
    except RmdataError:
        if not is_main_process():  # every rank raised the same error at the same check point
            raise typer.Exit(2) from None
        raise
    if not is_main_process():
        return
    m = result.model
    typer.echo(f"model: {m.path} ({m.architecture}, {str(m.dtype).removeprefix('torch.')} on {m.device.type})")
    typer.echo(f"rule: {m.rule}")
    rate = result.scored / result.seconds if result.seconds > 0 else 0.0
    typer.echo(
        f"{result.rows} rows: {result.scored} sequences scored now, {result.reused} rewards reused from --reuse, "
        f"{result.duplicates} duplicates reused, "
        f"{result.truncated} truncated, in {result.seconds:.1f} s ({rate:,.1f} sequences/s, {result.layout} layout)"
    )
    if result.resumed_rows:
        typer.echo(f"resumed {result.resumed_rows} rows")
    if result.invalid:
        typer.echo(f"skipped {result.invalid} invalid records: {result.output / 'rejects.jsonl'}")
    typer.echo(f"wrote {result.output}  (datasets.load_dataset({str(result.output)!r}))")


def _score_several(cfg: _ScoreDefaults, specs: list[str]) -> None:
    """Several --model: one table with a reward_<name> column per model (rmdata.score.several)."""
    import shlex

    from rmdata.score.several import parse_models, score_several

    result = score_several(
        cfg, parse_models(specs), "rmdata " + shlex.join(sys.argv[1:]), show_progress=sys.stderr.isatty()
    )
    for name, r in result.models.items():
        typer.echo(
            f"reward_{name}: {r.model.path} ({r.model.rule}); {r.scored} sequences scored now, {r.reused} rewards "
            f"reused from --reuse, {r.duplicates} duplicates reused, in {r.seconds:.1f} s"
        )
    for directory in result.reuse_ignored:
        typer.echo(f"note: --reuse {directory} holds none of these models' scores; it was not used")
    typer.echo(f"wrote {result.output}  ({result.rows} rows; datasets.load_dataset({str(result.output)!r}))")


@app.command("eval")
def eval_pairs(
    paths: Annotated[list[str], typer.Argument(show_default=False, help="Preference pairs to evaluate on.")],
    model: ModelOption = _SCORE.model,
    by: Annotated[
        str | None, typer.Option("--by", show_default=False, help="Also report per value of this input column.")
    ] = None,
    on_error: OnErrorOption = _SCORE.on_error,
    max_length: MaxLengthOption = None,
    batch_tokens: BatchTokensOption = _SCORE.batch_tokens,
    device: DeviceOption = _SCORE.device,
    dtype: DtypeOption = _SCORE.dtype,
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the report.")] = False,
) -> None:
    """Score chosen and rejected replies: accuracy, ties, mean scores and margin, length bias; RewardBench scores.

    On RewardBench data (columns subset and id) it also prints the official per-subset, per-section and
    overall scores.
    """
    from rmdata.score.evaluate import evaluate, length_warning

    quiet_transformers()
    result = evaluate(
        paths,
        model_dir=model,
        by=by,
        on_error=on_error,
        max_length=max_length,
        batch_tokens=batch_tokens,
        device=device,
        dtype=dtype,
        trust_remote_code=trust_remote_code,
        show_progress=sys.stderr.isatty() and not as_json,
    )
    if as_json:
        typer.echo(strict_json(result))
        return
    _print_eval(result)
    warning = length_warning(result)
    if warning:
        typer.secho(warning, fg=typer.colors.YELLOW)


def _print_eval(result: dict[str, object]) -> None:
    def line(name: str, m: dict[str, object]) -> str:
        def f(key: str) -> str:
            value = m.get(key)
            return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

        return (
            f"{name}: accuracy {f('accuracy')} on {m['pairs']} pairs ({m['ties']} ties), chosen {f('chosen_mean')}, "
            f"rejected {f('rejected_mean')}, margin {f('margin_mean')}, score {f('score_mean')} +- {f('score_std')}, "
            f"length r {f('length_correlation')}"
        )

    typer.echo(f"model: {result['model']} ({result['rule']})")
    typer.echo(line("all", result))
    grouped = result.get("by")
    if isinstance(grouped, dict):
        for value, metrics in grouped["groups"].items():
            typer.echo(line(f"  {grouped['column']}={value}", metrics))
    bench = result.get("rewardbench")
    if isinstance(bench, dict):
        sections = ", ".join(f"{k} {v:.4f}" for k, v in bench["sections"].items())
        typer.echo(f"RewardBench: overall {bench['overall']:.4f} ({sections})")
        for subset, value in bench["subsets"].items():
            typer.echo(f"  {subset}: {value:.4f}")
    bench2 = result.get("rewardbench2")
    if isinstance(bench2, dict):
        subsets = ", ".join(f"{k} {v:.4f}" for k, v in bench2["subsets"].items())
        typer.echo(f"RewardBench 2: overall {bench2['overall']:.4f} ({subsets})")
