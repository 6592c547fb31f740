"""`rmdata train-steps`, `score-steps`, `eval-steps` and `filter-steps`: process reward models over stepwise data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rmdata.cli.app import app, quiet_transformers
from rmdata.score.step_config import HELP
from rmdata.score.step_config import StepScoreConfig as _Defaults
from rmdata.train.step_config import HELP as TRAIN_HELP
from rmdata.train.step_config import StepTrainConfig as _TrainDefaults

_D = _Defaults()
_T = _TrainDefaults()

DataArg = Annotated[str, typer.Argument(show_default=False, help=HELP["data"])]
ModelOption = Annotated[str, typer.Option("--model", "-m", show_default=False, help=HELP["model"])]
LayoutOption = Annotated[str, typer.Option("--layout", help=HELP["layout"])]
DataLayoutOption = Annotated[str, typer.Option("--data-layout", help=HELP["data_layout"])]
NeutralOption = Annotated[float, typer.Option("--neutral-label", help=HELP["neutral_label"])]
ThresholdOption = Annotated[float, typer.Option("--threshold", help=HELP["threshold"])]
BatchTokensOption = Annotated[int, typer.Option("--batch-tokens", min=1, help=HELP["batch_tokens"])]
MaxLengthOption = Annotated[
    int | None, typer.Option("--max-length", min=1, show_default=False, help=HELP["max_length"])
]
DeviceOption = Annotated[str, typer.Option("--device", help=HELP["device"])]


@app.command("train-steps")
def train_steps_command(
    data: Annotated[str, typer.Argument(show_default=False, help=TRAIN_HELP["data"])],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Backbone: 'tiny' or a Hugging Face model directory.")
    ] = "tiny",
    finetune: Annotated[str, typer.Option("--finetune", help="full, lora or qlora (as rmdata train).")] = "full",
    separator: Annotated[
        str | None,
        typer.Option("--separator", show_default=False, help="Step separator token (default: the tokenizer's EOS)."),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help=TRAIN_HELP["output"])] = _T.output,
    data_layout: DataLayoutOption = _T.data_layout,
    neutral_label: NeutralOption = _T.neutral_label,
    max_packed_length: Annotated[
        int, typer.Option("--max-packed-length", help=TRAIN_HELP["max_packed_length"])
    ] = _T.max_packed_length,
    rows_per_step: Annotated[int, typer.Option("--rows-per-step", help=TRAIN_HELP["rows_per_step"])] = _T.rows_per_step,
    epochs: Annotated[int, typer.Option("--epochs", help=TRAIN_HELP["epochs"])] = _T.epochs,
    lr: Annotated[float, typer.Option("--lr", help=TRAIN_HELP["lr"])] = _T.lr,
    seed: Annotated[int, typer.Option("--seed", help=TRAIN_HELP["seed"])] = _T.seed,
    device: DeviceOption = _T.device,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing export rmdata wrote.")] = False,
) -> None:
    """Train a process reward model on labelled steps: the value head at a separator after every step, BCE per step.

    Solutions are packed into rows of --max-packed-length tokens; the export loads in `rmdata score-steps`
    (layout rmdata) and in transformers as AutoModelForSequenceClassification.
    """
    from rmdata.config import ModelConfig
    from rmdata.distributed import is_main_process
    from rmdata.train.step_run import run_train_steps

    quiet_transformers()
    cfg = _TrainDefaults(
        data=data,
        data_layout=data_layout,
        neutral_label=neutral_label,
        output=output,
        max_packed_length=max_packed_length,
        rows_per_step=rows_per_step,
        epochs=epochs,
        lr=lr,
        seed=seed,
        device=device,
        model=ModelConfig(name_or_path=model, finetune=finetune, reward_token=separator),  # type: ignore[arg-type]
    )
    summary = run_train_steps(cfg, overwrite=overwrite)
    if not is_main_process():  # under torchrun only rank 0 reports
        return
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    typer.echo(
        f"prm: {output}  ({summary['solutions']:,} solutions, {summary['steps']:,} steps, "
        f"{summary['optimizer_steps']} optimizer steps, loss {summary['first_loss']:.4f} -> "
        f"{summary['last_loss']:.4f}; dropped: {dropped})"
    )
    typer.echo(f"score: rmdata score-steps DATA --model {output}")


@app.command("score-steps")
def score_steps_command(
    data: DataArg,
    model: ModelOption,
    output: Annotated[str, typer.Option("--output", "-o", help=HELP["output"])] = _D.output,
    layout: LayoutOption = _D.layout,
    data_layout: DataLayoutOption = _D.data_layout,
    neutral_label: NeutralOption = _D.neutral_label,
    aggregate: Annotated[str, typer.Option("--aggregate", help=HELP["aggregate"])] = _D.aggregate,
    threshold: ThresholdOption = _D.threshold,
    batch_tokens: BatchTokensOption = _D.batch_tokens,
    max_length: MaxLengthOption = None,
    device: DeviceOption = _D.device,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=HELP["overwrite"])] = False,
) -> None:
    """Score every step of every solution with a process reward model (one forward per packed row).

    Writes a dataset directory: step_rewards, reward (--aggregate), first_error_step (--threshold) and the
    input columns per solution; records that cannot be scored go to rejects.jsonl with their reason.
    """
    from rmdata.score.step_run import run_score_steps

    quiet_transformers()
    cfg = _Defaults(
        data=data,
        model=model,
        layout=layout,
        data_layout=data_layout,
        neutral_label=neutral_label,
        output=output,
        aggregate=aggregate,
        threshold=threshold,
        batch_tokens=batch_tokens,
        max_length=max_length,
        device=device,
        overwrite=overwrite,
    )
    manifest = run_score_steps(cfg)
    dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items()) or "none"
    typer.echo(
        f"step scores: {output}  ({manifest['rows']:,} solutions, {manifest['steps']:,} steps; dropped: {dropped})"
    )
    if manifest["dropped"]:
        typer.echo(f"rejects: {output}/rejects.jsonl")


@app.command("eval-steps")
def eval_steps_command(
    data: DataArg,
    model: ModelOption,
    layout: LayoutOption = _D.layout,
    data_layout: DataLayoutOption = _D.data_layout,
    neutral_label: NeutralOption = _D.neutral_label,
    threshold: ThresholdOption = _D.threshold,
    subset: Annotated[str | None, typer.Option("--subset", show_default=False, help=HELP["subset"])] = None,
    batch_tokens: BatchTokensOption = _D.batch_tokens,
    max_length: MaxLengthOption = None,
    device: DeviceOption = _D.device,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", show_default=False, help="Also write the report here (JSON).")
    ] = None,
) -> None:
    """Evaluate a PRM on labelled stepwise data: step accuracy and ProcessBench's first-error F1, per subset.

    Prints one JSON report: for all solutions and each --subset value, accuracy on erroneous and on correct
    solutions (fractions), their harmonic mean f1, and step_accuracy.
    """
    from rmdata.io import write_text_atomic
    from rmdata.score.step_run import run_eval_steps

    quiet_transformers()
    cfg = _Defaults(
        data=data,
        model=model,
        layout=layout,
        data_layout=data_layout,
        neutral_label=neutral_label,
        threshold=threshold,
        subset=subset,
        batch_tokens=batch_tokens,
        max_length=max_length,
        device=device,
    )
    text = json.dumps(run_eval_steps(cfg), indent=2)
    if output is not None:
        write_text_atomic(output, text + "\n")
    typer.echo(text)


@app.command("filter-steps")
def filter_steps_command(
    scores: Annotated[Path, typer.Argument(exists=True, show_default=False, help="A `rmdata score-steps` output.")],
    threshold: ThresholdOption = _D.threshold,
    cut_at_first_error: Annotated[
        bool, typer.Option("--cut-at-first-error", help="Keep each solution's steps before its first error.")
    ] = False,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output dataset directory.")] = Path(
        "rmdata-out/step-sft"
    ),
    overwrite: Annotated[bool, typer.Option("--overwrite", help=HELP["overwrite"])] = False,
) -> None:
    """SFT data from step scores: solutions with no predicted error, or each cut before its first error.

    A step scoring under --threshold is an error; --cut-at-first-error keeps the correct prefix of each
    solution. Drops are counted by reason and written to rejects.jsonl.
    """
    from rmdata.curate.step_run import run_filter_steps

    manifest = run_filter_steps(scores, output, threshold=threshold, cut=cut_at_first_error, overwrite=overwrite)
    dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items()) or "none"
    typer.echo(f"sft: {output}  ({manifest['rows_kept']:,} of {manifest['rows_in']:,} solutions; dropped: {dropped})")
    typer.echo(f"load:  datasets.load_dataset({str(output)!r}, split='train')  # conversational 'messages' column")


@app.command("build-step-dpo")
def build_step_dpo_command(
    scores: Annotated[Path, typer.Argument(exists=True, show_default=False, help="A `rmdata score-steps` output.")],
    threshold: ThresholdOption = _D.threshold,
    max_pairs_per_prompt: Annotated[
        int | None,
        typer.Option("--max-pairs-per-prompt", show_default=False, help="Cap pairs per prompt, largest gaps first."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output dataset directory.")] = Path(
        "rmdata-out/step-dpo"
    ),
    overwrite: Annotated[bool, typer.Option("--overwrite", help=HELP["overwrite"])] = False,
) -> None:
    """Step-level DPO pairs: two solutions of a prompt sharing a correct prefix, then a correct vs a wrong step.

    Writes TRL's standard preference format (prompt = the prompt and the shared steps, chosen / rejected = the
    next step) with step_index and both rewards; solutions in no pair go to rejects.jsonl with their reason.
    """
    from rmdata.curate.step_run import run_build_step_dpo

    manifest = run_build_step_dpo(
        scores, output, threshold=threshold, max_pairs_per_prompt=max_pairs_per_prompt, overwrite=overwrite
    )
    dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items()) or "none"
    typer.echo(
        f"dpo: {output}  ({manifest['pairs']:,} step pairs from {manifest['rows_in']:,} solutions; unpaired: {dropped})"
    )
    typer.echo(f"load:  datasets.load_dataset({str(output)!r}, split='train')  # prompt / chosen / rejected strings")
