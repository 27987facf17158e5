"""Training under torchrun: disjoint shards, two CPU processes with gloo, one process = a plain run."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import closetai.training.train
from closetai.training.data.pack import make_pack
from closetai.training.train import ShardSampler, TrainArgs, train
from closetai.vision.model import load_model, read_model_file
from tests.helpers import REPO, SyntheticReader, synthetic_scene, tiny_model_config

TINY_MODEL_OPTIONS = ["--no-pretrained", "--min-size", "128", "--train-sizes", "128", "--fpn-channels", "32",
                      "--box-head-dim", "64", "--mask-head-channels", "32"]


def test_shards_are_disjoint_equal_and_reshuffled_each_epoch():
    samplers = [ShardSampler(11, rank, 3, torch.Generator().manual_seed(0)) for rank in range(3)]
    epochs = [[list(s) for s in samplers] for _ in range(2)]
    for shards in epochs:
        assert [len(s) for s in shards] == [3, 3, 3]  # 11 // 3: the tail is dropped, no rank repeats one
        flat = [i for s in shards for i in s]
        assert len(set(flat)) == 9 and set(flat) <= set(range(11))
    assert epochs[0] != epochs[1]
    # One process sees exactly the plain DataLoader's order (RandomSampler on the same generator).
    plain = torch.utils.data.RandomSampler(range(11), generator=torch.Generator().manual_seed(0))
    alone = ShardSampler(11, 0, 1, torch.Generator().manual_seed(0))
    assert [list(alone) for _ in range(3)] == [list(plain) for _ in range(3)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_thread():
    """As torchrun does per process: on a busy 2-core machine, OpenMP threads contending with other
    jobs made this tiny training run about 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_one_process_ddp_run_matches_a_plain_run(tmp_path, monkeypatch, one_thread):
    """The torchrun code path with world size 1 (process group, DDP, shard sampler) gives the same weights."""

    def run(name: str):
        args = TrainArgs(data="synthetic", out=str(tmp_path / f"{name}.pt"), epochs=2, batch_size=2, workers=0,
                         checkpoint_dir=str(tmp_path / name), pretrained_backbone=False,
                         config=tiny_model_config(), warmup_iters=2, progress=False)
        summary = train(args, SyntheticReader(4))
        return summary, torch.load(tmp_path / name / "last.pt", weights_only=False)["model"]

    plain_summary, plain = run("plain")
    wrapped = []

    def spy(module, **kwargs):
        wrapped.append(module)
        return torch.nn.parallel.DistributedDataParallel(module, **kwargs)

    monkeypatch.setattr(closetai.training.train, "DistributedDataParallel", spy)
    for key, value in {"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    ddp_summary, ddp = run("ddp")
    assert len(wrapped) == 1 and not torch.distributed.is_initialized()  # group destroyed at the end
    assert plain_summary["steps"] == ddp_summary["steps"] == 4 and ddp_summary["processes"] == 1
    assert plain.keys() == ddp.keys()
    for k in plain:
        assert torch.equal(plain[k], ddp[k]), k


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_one_model(tmp_path):
    pack = tmp_path / "pack"
    meta = make_pack(SyntheticReader(10), pack, short_side=128, val_fraction=0.2, source="synthetic",
                     taxonomy="test")
    assert meta["train_images"] == 8
    out = tmp_path / "out" / "model.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "closetai",
         "train", str(pack), "--out", str(out), "--epochs", "2", "--batch-size", "4", "--workers", "0",
         "--eval-every", "1", "--warmup-iters", "2", "--checkpoint-dir", str(tmp_path / "ck"), "--quiet",
         *TINY_MODEL_OPTIONS],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.pt"]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"steps"')]
    assert len(summaries) == 1 and summaries[0]["processes"] == 2  # rank 1 reports nothing
    assert summaries[0]["steps"] == 4  # global batch 4 over 8 images: 2 steps an epoch, as in one process
    epochs = [json.loads(line) for line in (tmp_path / "ck" / "train_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["processes"], r["images"]) for r in epochs] == [(0, 2, 8), (1, 2, 8)]  # not 16
    assert all("mask_AP" in r for r in epochs)  # rank 0 evaluated every epoch
    trained = read_model_file(out)["metadata"]["trained"]
    assert trained["hardware"] == "2 x cpu" and trained["batch_size"] == 4
    assert trained["val_files"] == meta["val_files"]  # rank 0's CLI recorded the pack split
    model, info = load_model(out)
    assert info["classes"] == ["red", "blue"]
    rgb = synthetic_scene(99)[0]
    with torch.no_grad():
        (pred,) = model([torch.from_numpy(rgb).permute(2, 0, 1).float() / 255])
    assert pred["masks"].shape[-2:] == rgb.shape[:2] and len(pred["boxes"]) == len(pred["scores"])
