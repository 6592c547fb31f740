"""The TRL and verl reward functions, against a live server and in-process: rmdata score's floats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rmdata.serve import clients
from rmdata.serve.clients import TRLReward, verl_compute_score, verl_compute_score_batch
from rmdata.serve.scorer import Scorer
from tests.serve.live import live_server


@pytest.fixture(scope="module")
def url(scorer: Scorer) -> object:
    with live_server(scorer, api_key="k") as base:
        yield base


def _f32(values: list[float]) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


def test_trl_reward_plain_and_conversational(
    url: str, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    reward = TRLReward(url, api_key="k")
    assert reward.__name__ == "rmdata_reward"
    prompts = [str(r["prompt"]) for r in rows]
    completions = [str(r["response"]) for r in rows]
    # called the way GRPOTrainer calls a reward function (keyword arguments, extra dataset columns)
    plain = reward(prompts=prompts, completions=completions, completion_ids=[[1]] * len(rows), trainer_state=None)
    assert _f32(plain) == offline_rewards.tobytes()
    chat_prompts = [[{"role": "user", "content": p}] for p in prompts]
    chat_completions = [[{"role": "assistant", "content": c}] for c in completions]
    assert _f32(reward(prompts=chat_prompts, completions=chat_completions)) == offline_rewards.tobytes()


def test_verl_hooks_read_the_prompt_from_extra_info(
    url: str, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    infos = [{"prompt": r["prompt"], "index": i} for i, r in enumerate(rows)]
    responses = [str(r["response"]) for r in rows]
    batch = verl_compute_score_batch(["d"] * len(rows), responses, [None] * len(rows), infos, url=url, api_key="k")
    assert _f32(batch) == offline_rewards.tobytes()
    one = verl_compute_score("d", responses[2], None, {"question": rows[2]["prompt"]}, url=url, api_key="k")
    assert _f32([one]) == offline_rewards[2:3].tobytes()
    with pytest.raises(ValueError, match="extra_info has no 'prompt'"):
        verl_compute_score("d", "x", None, {}, url=url, api_key="k")


def test_in_process_scoring_from_a_model_directory(
    model_dir: Path, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    reward = TRLReward(model_dir=str(model_dir), device="cpu")
    got = reward([str(r["prompt"]) for r in rows], [str(r["response"]) for r in rows])
    assert _f32(got) == offline_rewards.tobytes()


def test_a_refused_request_raises_with_the_server_message(url: str) -> None:
    with pytest.raises(RuntimeError, match="401"):
        clients.RewardClient(url, api_key="wrong", retries=0).score_rows([{"prompt": "a", "response": "b"}])


def test_verl_loads_the_hook_from_the_file_path(
    url: str, rows: list[dict[str, object]], offline_rewards: np.ndarray
) -> None:
    """verl imports custom_reward_function.path with spec_from_file_location, not as a package module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("custom_module", clients.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got = module.verl_compute_score(
        "d", str(rows[0]["response"]), None, {"prompt": rows[0]["prompt"]}, url=url, api_key="k"
    )
    assert _f32([got]) == offline_rewards[:1].tobytes()
