"""The SAE trainer: learning on data with a known sparse structure, metrics, resume equals an
uninterrupted run, the command line, and a two-process torchrun run against one process."""

import copy
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

# prismkit.sae needs safetensors and tqdm (the package's dependencies); a bare GPU-check machine may
# lack them, and its kernel tests should still run.
pytest.importorskip("safetensors")
pytest.importorskip("tqdm")
from safetensors.torch import load_file  # noqa: E402

from prismkit.sae import (  # noqa: E402
    GBAConfig,
    HookSource,
    JumpReLUSAE,
    LatentTracker,
    MemmapSource,
    ShuffleBuffer,
    TensorSource,
    TopKSAE,
    TrainConfig,
    Trainer,
    evaluate,
    load_sae,
    save_sparsify,
)  # fmt: skip
from prismkit.sae.__main__ import synthetic_activations  # noqa: E402

D = 16


@pytest.fixture(scope="module")
def acts():
    return synthetic_activations(6000, D, seed=1)


def small_config(**kw):
    base = dict(expansion=4, k=4, batch_size=128, total_tokens=128 * 12, buffer_tokens=1000, dead_tokens=1024,
                lr=3e-3, log_every=4, init_tokens=512)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def batch_mode_fvu(sae, x):
    """FVU of a training-mode forward on one batch (BatchTopK: the batch's own selection), on a
    copy so the running threshold is left as it is."""
    sae = copy.deepcopy(sae).train()
    with torch.no_grad():
        x = x.to(sae.W_enc.dtype)
        return float((x - sae(x).x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


@pytest.mark.parametrize("arch,extra", [
    ("topk", {}), ("batch_topk", {}), ("feature_choice", {"capacity": "zipf"}), ("topk", {"aux": "aux_zipf"}),
    ("jumprelu", {"bias_adaptation": "gba", "gba": GBAConfig(buffer_tokens=256, highest_target_frequency=0.2)}),
    ("jumprelu", {"l0_coef": 0.002}),
])  # fmt: skip
def test_training_reduces_fvu(acts, arch, extra, tmp_path):
    source = TensorSource(acts)
    trainer = Trainer(small_config(architecture=arch, out_dir=str(tmp_path), **extra), source)
    batch_rule = arch in ("batch_topk", "feature_choice")
    if batch_rule:  # their eval mode needs the running thresholds that training sets
        before = {"fvu": batch_mode_fvu(trainer.sae, acts[:2048])}
    else:
        before = evaluate(trainer.sae, source, 2048)
    trainer.fit(progress=False)
    after = evaluate(trainer.sae, source, 2048)
    if batch_rule:
        trained = batch_mode_fvu(trainer.sae, acts[:2048])
        assert trained < 0.9 * before["fvu"]
        # the learned thresholds are real ones (finite, not negative) and encode at least about as
        # well as the batch selection with at least about k latents per token (after 12 steps the
        # running average still lags the shrinking activations, so the L0 is above k, not at it)
        threshold = trainer.sae.threshold
        assert bool((threshold >= 0).any()) and bool(torch.isfinite(threshold).all())
        assert after["fvu"] < 1.5 * trained and after["l0_mean"] >= 0.5 * 4, (after, trained)
    else:
        assert after["fvu"] < 0.9 * before["fvu"]
    assert after["fvu"] < 1.0
    lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in lines] == [4, 8, 12]
    assert {"fvu", "aux_loss", "l0_mean", "l0_p50", "dead_fraction", "tokens_per_s"} <= set(lines[-1])
    assert os.path.exists(tmp_path / "sae" / "sae.safetensors")
    if extra.get("bias_adaptation") == "gba":
        assert not trainer.sae.b_enc.requires_grad and float(trainer.sae.b_enc.max()) <= 0
        assert float(trainer.sae.b_enc.min()) < 0  # the biases were adapted


def test_dead_latent_tracking_and_aux_loss(acts):
    tracker = LatentTracker(4, dead_tokens=100)
    tracker.update(torch.tensor([3, 0, 0, 1]), 60)
    tracker.update(torch.tensor([0, 0, 2, 0]), 60)
    assert tracker.tokens_since_fired.tolist() == [60, 120, 0, 60]
    assert tracker.dead().tolist() == [False, True, False, False]
    torch.testing.assert_close(
        tracker.frequency, torch.tensor([0.6 * 0.4 * 3 / 60, 0, 0.6 * 2 / 60, 0.6 * 0.4 / 60], dtype=torch.float64)
    )
    trainer = Trainer(small_config(dead_tokens=256, total_tokens=128 * 4), TensorSource(acts))
    m = trainer.train_step()
    assert m["aux_loss"] == 0  # nothing is dead yet
    trainer.tracker.tokens_since_fired[:20] = 10**9  # mark 20 latents dead
    m = trainer.train_step()
    assert m["aux_loss"] > 0


def test_auxk_switches_on_under_the_default_dead_window(acts):
    """With dead_tokens left at its default, latents that never fire count as dead within the run
    (here after 5 batches: a tenth of the run is less) and AuxK trains them."""
    config = TrainConfig(expansion=4, k=4, batch_size=128, total_tokens=128 * 12, buffer_tokens=1000, lr=3e-3,
                         init_tokens=512)  # fmt: skip
    assert config.dead_tokens is None and config.dead_window == 5 * 128
    assert TrainConfig().dead_window == 1_000_000 and TrainConfig(total_tokens=10**9).dead_window == 10_000_000
    trainer = Trainer(config, TensorSource(acts))
    trainer.initialize()
    with torch.no_grad():
        trainer.sae.b_enc[:20] = -1e4  # these latents can never fire
    aux = [trainer.train_step()["aux_loss"] for _ in range(12)]
    assert aux[:5] == [0.0] * 5 and all(a > 0 for a in aux[5:]), aux
    with pytest.raises(ValueError, match="dead_tokens must be positive"):
        TrainConfig(dead_tokens=0)


@pytest.mark.parametrize("arch,extra", [
    ("topk", {"aux": "auxk", "dead_tokens": 256}), ("batch_topk", {}), ("topk", {"aux": "aux_zipf"}),
    ("jumprelu", {"bias_adaptation": "gba", "gba": GBAConfig(buffer_tokens=300)}),
    ("jumprelu", {"l0_coef": 0.05, "l0_target": 8.0, "l0_warmup_steps": 4, "jumprelu_init_threshold": 0.3}),
    ("batch_topk", {"lr_warmup_steps": 3, "lr_decay": "cosine", "grad_clip": 0.05, "k_start": 12, "k_anneal_steps": 10}),
    ("topk", {"normalize_activations": True}),
])  # fmt: skip
def test_resume_gives_the_same_steps(acts, tmp_path, arch, extra):
    """Checkpoint at step 9, inside the shuffle buffer's second fill (7 batches of 128 per 1000-token
    fill, so a leftover is carried), then resume: the same weights, buffers and trackers."""
    source = TensorSource(acts)
    cfg = dict(architecture=arch, checkpoint_every=9, out_dir=str(tmp_path / "a"), **extra)
    full = Trainer(small_config(**cfg), source)
    full.fit(progress=False)
    resumed = Trainer.resume(str(tmp_path / "a" / "checkpoints" / "step_9"), source, out_dir=str(tmp_path / "b"))
    assert resumed.step == 9 and resumed.buffer.fill == 1 and resumed.buffer.leftover.shape[0] > 0
    resumed.fit(progress=False)
    for name, value in full.sae.state_dict().items():
        assert torch.equal(value, resumed.sae.state_dict()[name]), name
    assert torch.equal(full.tracker.tokens_since_fired, resumed.tracker.tokens_since_fired)
    assert torch.equal(full.tracker.frequency, resumed.tracker.frequency)
    if full.gba is not None:
        assert full.gba.tokens == resumed.gba.tokens and torch.equal(full.gba.fire_count, resumed.gba.fire_count)


def test_shuffle_buffer_and_rank_slices(acts):
    src = TensorSource(acts[:700])
    one = ShuffleBuffer(src, 100, buffer_tokens=250, seed=3)
    ranks = [ShuffleBuffer(src, 100, buffer_tokens=250, seed=3, rank=r, world_size=2) for r in range(2)]
    seen = []
    for _ in range(9):  # crosses fills with leftovers and the source's end (it wraps)
        batch = one.next_batch()
        assert torch.equal(torch.cat([r.next_batch() for r in ranks]), batch)
        seen.append(batch)
    rows = {tuple(r.tolist()) for r in torch.cat(seen[:2])}
    assert len(rows) == 200  # no token twice within a fill
    with pytest.raises(ValueError, match="divisible by the world size"):
        ShuffleBuffer(src, 101, world_size=2)


def test_hook_source_reads_and_seeks():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4))
    inputs = [torch.randn(3, 5), torch.randn(4, 5), torch.randn(2, 5)]
    with torch.no_grad():
        want = torch.cat([model[1](model[0](x)) for x in inputs])  # 9 tokens, d = 6
    src = HookSource(model, "1", inputs)
    assert src.d_in == 6
    assert torch.equal(src.read(0, 5), want[:5])
    assert torch.equal(src.read(5, 6), torch.cat([want[5:], want[:2]]))  # wraps around the inputs
    assert torch.equal(src.read(1, 3), want[1:4])  # a jump back replays from the start
    assert src.read(4, 0).shape == (0, 6)
    masked = HookSource(model, "1", inputs, mask_fn=lambda x: x[:, 0] > 0)
    keep = torch.cat([x[:, 0] > 0 for x in inputs])
    assert torch.equal(masked.read(0, int(keep.sum())), want[keep])
    with pytest.raises(ValueError, match="no input batch yields any token"):
        HookSource(model, "1", inputs, mask_fn=lambda x: x[:, 0] > 100).read(0, 3)
    with pytest.raises(AttributeError):
        HookSource(model, "5", inputs)


def test_memmap_source_and_cli(acts, tmp_path):
    path = tmp_path / "acts.npy"
    np.save(path, acts.numpy())
    src = MemmapSource(str(path))
    assert torch.equal(src.read(5990, 20), acts[torch.arange(5990, 6010) % 6000])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "prismkit.sae", "train", "--activations", str(path), "--out", str(out),
           "--expansion", "2", "--k", "3", "--batch-size", "128", "--total-tokens", "1024",
           "--buffer-tokens", "512", "--no-progress"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["final"]["l0_mean"] == 3.0
    result = subprocess.run([sys.executable, "-m", "prismkit.sae", "eval", "--sae", str(out / "sae"),
                             "--activations", str(path), "--tokens", "1000"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert 0 < json.loads(result.stdout)["fvu"] < 1
    bad = subprocess.run(cmd[:6] + ["--aux", "bogus"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "argument --aux: invalid choice: 'bogus'" in bad.stderr


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "prismkit.sae", *args], capture_output=True, text=True, timeout=300)


def test_cli_explains_itself_and_turns_bad_values_into_parser_errors(acts, tmp_path):
    """Every flag has a help line with its default (and choices); bad values are parser errors
    (exit 2, one line, no traceback); a run longer than the data says so; eval reads SAELens'
    and sparsify's directories too."""
    helped = run_cli("train", "--help").stdout
    assert "--out OUT" in helped and "--out-dir" not in helped
    assert "tokens per step (default: 4096)" in helped and "{equal,zipf}" in helped
    assert "the first group's target frequency (default: 0.1)" in helped
    path = tmp_path / "acts.npy"
    np.save(path, acts[:2000].numpy())
    base = ["train", "--activations", str(path), "--no-progress", "--batch-size", "128", "--total-tokens", "512"]
    for flags, message in [
        (["--architecture", "topK"], "argument --architecture: invalid choice: 'topK'"),
        (["--capacity", "zipff"], "argument --capacity: invalid choice: 'zipff'"),
        (["--expansion", "1", "--k", "40"], "TopKSAE: k must be in [1, num_latents=16], got 40"),
        (["--bias-adaptation", "gba"], "bias_adaptation='gba' needs architecture='jumprelu'"),
    ]:
        result = run_cli(*base, *flags)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    missing = run_cli("train", "--activations", str(tmp_path / "nope.npy"))
    assert missing.returncode == 2 and "--activations: no such file" in missing.stderr
    long_run = run_cli(*base[:-1], "6000", "--expansion", "2", "--k", "3")
    assert long_run.returncode == 0 and "total_tokens 6,000 is 3.0 passes over the 2,000 tokens" in long_run.stderr
    save_sparsify(TopKSAE(D, 32, k=3), str(tmp_path / "sparsify" / "layers.1"))
    evaluated = run_cli("eval", "--sae", str(tmp_path / "sparsify"), "--activations", str(path), "--tokens", "500")
    assert evaluated.returncode == 0 and "fvu" in json.loads(evaluated.stdout), evaluated.stderr
    nothing = run_cli("eval", "--sae", str(tmp_path), "--activations", str(path))
    assert nothing.returncode == 2 and "holds no SAE in prismkit's, SAELens' or sparsify's layout" in nothing.stderr


@pytest.mark.parametrize(
    "loss_flags",
    [
        ["--aux", "none"],
        # the L0 penalty's global L0 (dictionary_learning's target form) is reduced over the ranks
        [
            "--architecture",
            "jumprelu",
            "--l0-coef",
            "0.05",
            "--l0-target",
            "8",
            "--jumprelu-init-threshold",
            "0.3",
            "--aux",
            "none",
        ],  # fmt: skip
        [
            "--aux",
            "auxk",
            "--dead-tokens",
            "256",
            "--multi-topk",
            "true",
            "--expansion",
            "16",
            "--k",
            "2",
            "--log-every",
            "1",
        ],
    ],
)
def test_two_process_torchrun_matches_one_process(acts, tmp_path, loss_flags):
    """torchrun --nproc_per_node=2 (gloo) on the same global batches gives the single-process
    result within float tolerance, with the auxiliary losses too (their normalization is global)."""
    path = tmp_path / "acts.npy"
    np.save(path, acts.numpy())
    flags = ["--activations", str(path), "--expansion", "4", "--k", "4", "--batch-size", "256",
             "--total-tokens", "2560", "--buffer-tokens", "1024", "--lr", "0.003", "--no-progress", *loss_flags]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "prismkit.sae", "train", "--out", str(tmp_path / "one"), *flags],
                         capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "prismkit.sae", "train", "--out", str(tmp_path / "two"), *flags],
                         capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "sae" / "sae.safetensors"))
    b = load_file(str(tmp_path / "two" / "sae" / "sae.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)
    start = load_sae(str(tmp_path / "one" / "sae"))
    assert not torch.equal(start.W_dec, TrainConfig(expansion=4, k=4).build_sae(D).W_dec)  # it trained
    if "auxk" in loss_flags:
        metrics = [json.loads(l) for l in open(tmp_path / "one" / "metrics.jsonl")]
        assert any(m["aux_loss"] > 0 for m in metrics)  # the aux loss was active


def test_resume_of_a_copied_run_writes_into_the_copy(acts, tmp_path):
    """Resuming <copy>/checkpoints/step_4 writes into <copy> (before: into the original run recorded
    in the checkpoint, overwriting its sae/ and later checkpoints) and cuts <copy>'s metrics back to
    step 4 (before: steps 8 and 12 were logged twice)."""
    import shutil

    source = TensorSource(acts)
    original = tmp_path / "original"
    Trainer(small_config(out_dir=str(original), checkpoint_every=4), source).fit(progress=False)
    before = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    resumed = Trainer.resume(str(copy / "checkpoints" / "step_4"), source)
    assert resumed.config.out_dir == str(copy)
    assert [json.loads(l)["step"] for l in open(copy / "metrics.jsonl")] == [4]
    resumed.fit(progress=False)
    assert [json.loads(l)["step"] for l in open(copy / "metrics.jsonl")] == [4, 8, 12]
    assert {p: p.read_bytes() for p in original.rglob("*") if p.is_file()} == before
    shutil.copytree(copy / "checkpoints" / "step_4", tmp_path / "loose")  # outside any run: say so
    with pytest.raises(ValueError, match="pass out_dir="):
        Trainer.resume(str(tmp_path / "loose"), source)


def test_ctrl_c_saves_a_checkpoint_and_stops_cleanly(acts, tmp_path, monkeypatch):
    """The first SIGINT stops training after the current step with a checkpoint (before: a
    traceback from inside the op and nothing saved)."""
    import signal

    trainer = Trainer(small_config(out_dir=str(tmp_path)), TensorSource(acts))
    step = trainer.train_step
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job

    def step_then_interrupt():
        out = step()
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    trainer.fit(progress=False)
    assert trainer.interrupted and trainer.step == 3
    assert (tmp_path / "checkpoints" / "step_3" / "trainer_state.json").exists()
    assert not (tmp_path / "sae").exists()  # the final SAE is written only by a finished run
    assert signal.getsignal(signal.SIGINT) is before  # the handler it found is back
    resumed = Trainer.resume(str(tmp_path / "checkpoints" / "step_3"), TensorSource(acts))
    resumed.fit(progress=False)
    assert resumed.step == 12 and not resumed.interrupted


def test_fine_tuning_a_loaded_checkpoint_at_lr_0_changes_nothing(acts):
    """A JumpReLU checkpoint with decoder rows of norm 0.1-0.3 (as SAELens' standard and JumpReLU
    SAEs are saved): two training steps at learning rate 0 leave its encoding and reconstruction as
    they were (before: the trainer re-initialized b_dec and W_enc from data, and normalize_decoder
    shrank the decoder rows without folding their norms into the encoder)."""
    g = torch.Generator().manual_seed(0)
    sae = JumpReLUSAE(D, 64)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, D, generator=g) * 0.3)
        sae.b_enc.copy_(torch.randn(64, generator=g) * 0.1 - 0.2)
        sae.W_dec.copy_(torch.nn.functional.normalize(torch.randn(64, D, generator=g), dim=1)
                        * torch.linspace(0.1, 0.3, 64)[:, None])  # fmt: skip
        sae.b_dec.copy_(torch.randn(D, generator=g))
        sae.threshold.copy_(torch.rand(64, generator=g) * 0.2)
    x = torch.as_tensor(acts[:256], dtype=torch.float32)
    with torch.no_grad():
        before_code, before_out = sae.encode(x).to_dense(), sae(x).x_hat
    config = small_config(architecture="jumprelu", bias_adaptation="gba", gba=GBAConfig(buffer_tokens=10**9), lr=0.0)
    trainer = Trainer(config, TensorSource(acts), sae=sae)
    trainer.train_step()
    trainer.train_step()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64))
    with torch.no_grad():
        torch.testing.assert_close(sae(x).x_hat, before_out, atol=1e-5, rtol=1e-5)
        after_code = sae.encode(x).to_dense() / torch.linspace(0.1, 0.3, 64)  # activations grew by the row norms
        torch.testing.assert_close(after_code, before_code, atol=1e-5, rtol=1e-5)


def test_a_short_batch_topk_run_says_its_threshold_has_not_settled(acts):
    with pytest.warns(UserWarning, match="12 steps are too few for the running inference threshold"):
        Trainer(small_config(architecture="batch_topk"), TensorSource(acts))


def test_learning_rate_schedules_gradient_clipping_and_k_annealing(acts, tmp_path):
    cfg = small_config(lr_warmup_steps=2, lr_decay="cosine", lr_decay_steps=6, lr_end_scale=0.1, grad_clip=0.5,
                       k_start=12, k_anneal_steps=6, out_dir=str(tmp_path), log_every=1)  # fmt: skip
    trainer = Trainer(cfg, TensorSource(acts))
    multiplier = [trainer.lr_multiplier(s) for s in range(12)]
    assert multiplier[:6] == [0.5] + [1.0] * 5
    assert multiplier[8] == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the cosine: 3 of its 6 steps
    assert multiplier[11] == pytest.approx(0.1) and multiplier == sorted(multiplier[:2]) + sorted(
        multiplier[2:], reverse=True
    )
    assert [trainer.k_at(s) for s in (0, 3, 6, 11)] == [12, 8, 4, 4]
    trainer.fit(progress=False)
    metrics = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [m["lr"] for m in metrics] == pytest.approx([3e-3 * m for m in multiplier])
    assert [m["k"] for m in metrics] == [trainer.k_at(s) for s in range(12)]
    assert [m["l0_mean"] for m in metrics] == [trainer.k_at(s) for s in range(12)]  # TopK: exactly k per token
    assert all(m["grad_norm"] > 0 for m in metrics) and trainer.sae.k == 4
    linear = Trainer(small_config(lr_decay="linear", lr_end_scale=0.0), TensorSource(acts))
    # the default decay is the last 20% of the 12 steps (2), reaching the end value at the last step
    assert [linear.lr_multiplier(s) for s in range(9, 12)] == pytest.approx([1.0, 0.5, 0.0])
    for bad, message in ((dict(architecture="feature_choice", k_start=8, k_anneal_steps=2), "k_start .* needs topk"),
                         (dict(k_start=2, k_anneal_steps=2), "anneals down"), (dict(k_start=8), "anneals down"),
                         (dict(lr_end_scale=1.5), "lr_end_scale must lie in"), (dict(grad_clip=0.0), "grad_clip must be"),
                         (dict(lr_decay="exponential"), "lr_decay must be one of"),
                         (dict(k_start=8, k_anneal_steps=100), "outlasts the run")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            small_config(**bad)


def test_activation_normalization_is_folded_into_the_saved_sae(acts, tmp_path):
    """Inputs scaled to a mean squared norm of d_in during training; the saved and returned SAE has
    the scale folded in (biases and thresholds / s), so on raw activations it reconstructs what the
    trained one does on scaled ones (rescaled back), its code the trained code / s."""
    raw = acts * 37.0 + 5.0  # far from unit scale
    cfg = small_config(normalize_activations=True, out_dir=str(tmp_path))
    trainer = Trainer(cfg, TensorSource(raw))
    sae = trainer.fit(progress=False)
    s = trainer.input_scale
    sample = raw[: max(cfg.init_tokens, 4096)].double()
    assert s == pytest.approx(math.sqrt(D / float(sample.pow(2).sum(1).mean())), rel=1e-12)
    x = raw[:200]
    with torch.no_grad():
        folded, trained = sae.eval()(x), trainer.sae.eval()(x * s)
    torch.testing.assert_close(folded.x_hat, trained.x_hat / s, atol=1e-4 * float(x.abs().max()), rtol=1e-4)
    torch.testing.assert_close(folded.code.to_dense(), trained.code.to_dense() / s, atol=1e-5, rtol=1e-4)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(sae.num_latents), atol=1e-5)  # still unit-norm
    with pytest.raises(ValueError, match="normalize_activations=True trains in scaled units"):
        Trainer(cfg, TensorSource(raw), sae=sae)
    saved = load_sae(str(tmp_path / "sae"))
    assert saved.metadata["input_scale_folded"] == pytest.approx(s)
    for name, value in sae.state_dict().items():
        assert torch.equal(saved.state_dict()[name], value), name
    plain = Trainer(small_config(), TensorSource(raw))
    assert plain.fit(progress=False) is plain.sae and plain.input_scale is None


def test_weights_and_biases_logging_offline(acts, tmp_path, monkeypatch):
    """TrainConfig(wandb=True) with WANDB_MODE=offline: a local W&B run beside metrics.jsonl that is
    sent every metrics line (captured on the way in: wandb's offline file format has no reader), and
    a resumed run continues the same W&B run."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logged, real_init = [], wandb.init

    def init(**kwargs):
        run = real_init(**kwargs)
        real_log = run.log
        run.log = lambda data, step=None: (logged.append((step, dict(data))), real_log(data, step=step))[1]
        return run

    monkeypatch.setattr(wandb, "init", init)
    out = tmp_path / "run"
    trainer = Trainer(small_config(wandb=True, out_dir=str(out), checkpoint_every=8), TensorSource(acts))
    trainer.fit(progress=False)
    runs = list((out / "wandb").glob(f"offline-run-*-{trainer.wandb_id}"))
    assert len(runs) == 1 and (runs[0] / f"run-{trainer.wandb_id}.wandb").stat().st_size > 0
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert logged == [(line["step"], line) for line in lines]
    resumed = Trainer.resume(str(out / "checkpoints" / "step_8"), TensorSource(acts))
    assert resumed.wandb_id == trainer.wandb_id


def test_relu_l1_sae_penalty_warmup_and_sparsity(acts, tmp_path):
    """architecture='relu': a ReLU SAE (JumpReLU at threshold 0) with the L1 term
    sum_tj a_tj |W_dec[j]| / (N RMS deviation), its weight ramped over l1_warmup_steps; a larger
    weight gives a sparser code."""
    from prismkit.sae import losses

    g = torch.Generator().manual_seed(4)
    sae = JumpReLUSAE(D, 40, seed=2)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(40, 1, generator=g) + 0.5)  # not unit norm: the norms count
    x = acts[:64]
    code = sae.encode(x)
    variance = (x - x.mean(0)).pow(2).sum()
    got = losses.l1_penalty(code, sae.W_dec, 64, variance)
    dense = torch.relu(torch.nn.functional.linear(x - sae.b_dec, sae.W_enc, sae.b_enc))  # ReLU SAE, plain PyTorch
    want = (dense * sae.W_dec.norm(dim=1)).sum() / (64 * torch.sqrt(variance / 64))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    (g_ours,) = torch.autograd.grad(got, sae.W_enc)
    (g_want,) = torch.autograd.grad(want, sae.W_enc)
    torch.testing.assert_close(g_ours, g_want, atol=1e-5, rtol=1e-4)
    l0, l1 = {}, {}
    for coef in (0.01, 0.3):
        cfg = small_config(architecture="relu", l1_coef=coef, l1_warmup_steps=4, total_tokens=128 * 30, log_every=1,
                           aux="none", out_dir=str(tmp_path / str(coef)))  # fmt: skip
        trainer = Trainer(cfg, TensorSource(acts))
        trainer.fit(progress=False)
        metrics = [json.loads(line) for line in open(tmp_path / str(coef) / "metrics.jsonl")]
        assert [m["l1_coef"] for m in metrics[:5]] == pytest.approx([coef * f for f in (0.25, 0.5, 0.75, 1.0, 1.0)])
        assert isinstance(trainer.sae, JumpReLUSAE) and torch.all(trainer.sae.threshold == 0)
        l0[coef] = sum(m["l0_mean"] for m in metrics[-5:]) / 5
        l1[coef] = sum(m["l1"] for m in metrics[-5:]) / 5
    assert l1[0.3] < 0.75 * l1[0.01] and l0[0.3] < l0[0.01], (l0, l1)
    with pytest.raises(ValueError, match="architecture='relu' needs l1_coef > 0"):
        TrainConfig(architecture="relu")
    with pytest.raises(ValueError, match="l1_coef is the relu architecture's penalty"):
        TrainConfig(l1_coef=0.1)


def test_jumprelu_l0_penalty_is_saelens_step_loss(acts):
    """losses.jumprelu_l0: the value is the mean L0, the threshold gradient SAELens' Step estimator
    -(1 / (N bandwidth)) sum_t 1[|z_tj - theta_j| < bandwidth / 2] (dense, in plain PyTorch here),
    and no gradient reaches the encoder."""
    from prismkit.sae import losses

    sae = JumpReLUSAE(D, 40, bandwidth=0.4, init_threshold=0.2, seed=3, dtype=torch.float64).train()
    x = acts[:96].double()
    out = sae(x)
    l0 = losses.jumprelu_l0(out.code, out.in_window, sae.threshold, sae.bandwidth, 96)
    z = torch.nn.functional.linear(x - sae.b_dec, sae.W_enc, sae.b_enc).detach()
    theta = sae.threshold.detach()
    assert float(l0.detach()) == pytest.approx(float((z > theta).sum()) / 96)
    (grad,) = torch.autograd.grad(l0, sae.threshold, retain_graph=True)
    want = -((z - theta).abs() < 0.2).sum(0) / (96 * 0.4)
    assert want.abs().sum() > 0
    torch.testing.assert_close(grad, want.double())
    assert torch.autograd.grad(l0, sae.W_enc, allow_unused=True)[0] is None
    saelens = pytest.importorskip("sae_lens.saes.jumprelu_sae")
    theta_peer = theta.clone().requires_grad_()
    saelens.Step.apply(z, theta_peer, 0.4, False).sum(-1).mean().backward()
    torch.testing.assert_close(grad, theta_peer.grad)


def test_jumprelu_training_learns_thresholds_under_its_l0_penalty(acts, tmp_path):
    """architecture='jumprelu' with l0_coef: thresholds trained by the straight-through estimator
    stay >= 0 and rise with the penalty's weight, which lowers the L0; l0_target (dictionary_learning's
    (L0 / target - 1)^2) pulls the L0 toward the target; the saved SAE loads as a JumpReLU SAE with
    the trained thresholds, whose eval-mode code is the training code's kept entries."""
    runs = {}
    for name, extra in {"light": {"l0_coef": 0.001}, "heavy": {"l0_coef": 0.1},
                        "target 4": {"l0_coef": 0.1, "l0_target": 4.0},
                        "target 30": {"l0_coef": 0.1, "l0_target": 30.0}}.items():  # fmt: skip
        cfg = small_config(architecture="jumprelu", total_tokens=128 * 40, lr=1e-2, aux="none", log_every=1,
                           jumprelu_init_threshold=0.5, l0_warmup_steps=2, out_dir=str(tmp_path / name), **extra)  # fmt: skip
        trainer = Trainer(cfg, TensorSource(acts))
        trainer.fit(progress=False)
        metrics = [json.loads(line) for line in open(tmp_path / name / "metrics.jsonl")]
        assert [m["l0_coef"] for m in metrics[:3]] == pytest.approx([extra["l0_coef"] * f for f in (0.5, 1, 1)])
        assert all(m["l0_penalty"] >= 0 for m in metrics) and (trainer.sae.threshold >= 0).all()
        runs[name] = (sum(m["l0_mean"] for m in metrics[-5:]) / 5, metrics[-1]["threshold_mean"], trainer)
    assert runs["heavy"][0] < 0.8 * runs["light"][0] and runs["heavy"][1] > runs["light"][1] + 0.1, runs
    assert runs["target 4"][0] < runs["target 30"][0] - 3, runs
    trainer = runs["heavy"][2]
    loaded = load_sae(str(tmp_path / "heavy" / "sae"))
    assert isinstance(loaded, JumpReLUSAE) and loaded.bandwidth == 0.05
    assert torch.equal(loaded.threshold, trainer.sae.threshold.detach())
    x = acts[:200]
    with torch.no_grad():
        train_code = trainer.sae.train()(x).code
        eval_code = loaded.eval().encode(x)
    kept = train_code.values > 0
    assert kept.sum() < train_code.values.numel()  # the training code also lists window-only entries
    assert torch.equal(eval_code.indices, train_code.indices[kept])
    for bad, message in (({}, "needs one sparsity mechanism"), ({"l0_coef": -1.0}, "needs one sparsity mechanism"),
                         ({"l0_coef": 0.1, "l0_target": 0.0}, "l0_target must be > 0"),
                         ({"l0_coef": 0.1, "jumprelu_bandwidth": 0.0}, "jumprelu_bandwidth must be finite and > 0"),
                         ({"l0_coef": 0.1, "jumprelu_init_threshold": -0.1}, "jumprelu_init_threshold must be >= 0")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            TrainConfig(architecture="jumprelu", **bad)
    with pytest.raises(ValueError, match="l0_coef is the jumprelu architecture's penalty"):
        TrainConfig(l0_coef=0.1)


def test_jumprelu_init_l0_starts_every_latent_at_the_same_share(acts):
    """jumprelu_init_l0: thresholds from the first init_tokens tokens, each latent firing on
    round(N l0 / F) of them, so the first step's L0 is about l0 (with a small fixed threshold
    about half the latents fire)."""
    cfg = small_config(architecture="jumprelu", l0_coef=0.01, jumprelu_init_l0=6.0, expansion=8, init_tokens=1024,
                       aux="none")  # fmt: skip
    trainer = Trainer(cfg, TensorSource(acts))
    trainer.initialize()
    sae = trainer.sae
    z = torch.nn.functional.linear(sae.encoder_input(acts[:1024]), sae.W_enc, sae.b_enc)
    fires = (z > sae.threshold).sum(0) - round(1024 * 6 / 128)
    assert ((fires == 0) | (fires == 1)).all() and (fires == 0).float().mean() > 0.9  # +1: a GEMM's last bit
    assert 4 < trainer.train_step()["l0_mean"] < 8
    dense_start = Trainer(small_config(architecture="jumprelu", l0_coef=0.01, expansion=8, aux="none"),
                          TensorSource(acts)).train_step()["l0_mean"]  # fmt: skip
    assert dense_start > 30, dense_start
    with pytest.raises(ValueError, match="jumprelu_init_l0 must be > 0 and needs architecture='jumprelu'"):
        TrainConfig(jumprelu_init_l0=6.0)
    with pytest.raises(ValueError, match="needs more than the 1024 tokens given"):
        sae.init_thresholds_for_l0(acts[:1024], 128.0)


def test_fine_tuning_a_loaded_jumprelu_sae_trains_its_thresholds(acts):
    """A JumpReLU SAE with fixed thresholds (what the SAELens, Gemma Scope and dictionary_learning
    loaders give) trains them when l0_coef > 0, from their loaded values; an SAE that trains its
    thresholds without the penalty is refused."""
    loaded = JumpReLUSAE(D, 64, init_threshold=0.2, seed=5)
    assert "threshold" in dict(loaded.named_buffers())
    cfg = small_config(architecture="jumprelu", l0_coef=0.5, jumprelu_bandwidth=0.1, aux="none", lr=1e-2)
    trainer = Trainer(cfg, TensorSource(acts), sae=loaded)
    assert loaded.bandwidth == 0.1 and "threshold" in dict(loaded.named_parameters())
    assert torch.equal(loaded.threshold.detach(), torch.full((64,), 0.2))
    steps = [trainer.train_step() for _ in range(5)]
    assert all("l0_penalty" in m for m in steps) and float(loaded.threshold.min()) > 0.2  # the penalty raised them
    normalized = Trainer(small_config(architecture="jumprelu", l0_coef=0.5, normalize_activations=True,
                                      total_tokens=256), TensorSource(acts))  # fmt: skip
    normalized.fit(progress=False)
    folded = normalized.trained_sae()  # thresholds and the estimator's window both in raw units
    assert folded.bandwidth == pytest.approx(0.05 / normalized.input_scale) and normalized.sae.bandwidth == 0.05
    torch.testing.assert_close(folded.threshold, normalized.sae.threshold / normalized.input_scale)
    gba = small_config(architecture="jumprelu", bias_adaptation="gba")
    with pytest.raises(ValueError, match="trains its JumpReLU thresholds .* set l0_coef > 0"):
        Trainer(gba, TensorSource(acts), sae=loaded)
    with pytest.raises(ValueError, match="l0_target=100.0 exceeds the SAE's 64 latents"):
        Trainer(small_config(architecture="jumprelu", l0_coef=0.5, l0_target=100.0), TensorSource(acts), sae=loaded)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_bf16_autocast_training(acts, device):
    """autocast='bf16': on CUDA the forward's fused kernels run in bfloat16 on float32 master weights
    and the run trains about as well as in float32 (the same seed and batches); on the CPU it runs."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no GPU")
    fvu = {}
    for mode in ("none", "bf16"):
        trainer = Trainer(small_config(autocast=mode, device=device, total_tokens=128 * 20), TensorSource(acts))
        steps = [trainer.train_step() for _ in range(20)]
        assert trainer.sae.W_enc.dtype == torch.float32 and all(math.isfinite(s["fvu"]) for s in steps)
        fvu[mode] = sum(s["fvu"] for s in steps[-5:]) / 5
        with torch.autocast(device, dtype=torch.bfloat16, enabled=mode == "bf16"), torch.no_grad():
            values = trainer.sae.train()(acts[:64].to(device)).code.values
        # CUDA: the kernels ran in bf16; CPU: prismkit's ops stay in float32 under autocast (their kernels
        # compute in float32 anyway; prismkit/ops/registry.py's autocast rule)
        assert values.dtype == (torch.bfloat16 if mode == "bf16" and device == "cuda" else torch.float32)
    assert fvu["bf16"] < 1.1 * fvu["none"] + 0.02, fvu
