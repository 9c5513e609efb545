"""Command line: ``python -m prismkit.sae train ...`` and ``python -m prismkit.sae eval ...``.

    python -m prismkit.sae train --activations acts.npy --out runs/topk --architecture topk --k 32
    python -m prismkit.sae train --config run.json --activations acts.npy   # flags override the file
    torchrun --nproc_per_node=2 -m prismkit.sae train --activations acts.npy --out runs/ddp
    python -m prismkit.sae train --resume runs/topk/checkpoints/step_100 --activations acts.npy
    python -m prismkit.sae eval --sae runs/topk/sae --activations acts.npy --tokens 100000

``--activations`` is a .npy (memory-mapped), .safetensors or .pt file of [N, d] activations;
``--synthetic N:D`` generates N tokens of dimension D instead (a quick try-out). Every field of
``TrainConfig`` is a flag (``--batch-size``, ``--total-tokens``, ``--aux aux_zipf``,
``--bias-adaptation gba``, ``--gba.buffer-tokens`` ...).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from dataclasses import fields

import torch

from .data import MemmapSource, TensorSource
from .gba import GBAConfig
from .io import load_sae
from .trainer import TrainConfig, Trainer, evaluate


def synthetic_activations(num_tokens: int, d: int, seed: int = 0) -> torch.Tensor:
    """Sparse combinations of 8*d random unit directions plus noise and an offset: data with a
    known sparse structure, for trying the trainer without a model."""
    gen = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(8 * d, d, generator=gen)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    out = torch.empty(num_tokens, d)
    for s in range(0, num_tokens, 8192):
        n = min(8192, num_tokens - s)
        active = (torch.rand(n, 8 * d, generator=gen) < 4.0 / d).float() * torch.rand(n, 8 * d, generator=gen) * 3
        out[s : s + n] = active @ dictionary + 0.05 * torch.randn(n, d, generator=gen) + 0.5
    return out


def _source(args, parser):
    if args.activations:
        if not os.path.isfile(args.activations):
            parser.error(f"--activations: no such file {args.activations!r}")
        try:
            return MemmapSource(args.activations)
        except (ValueError, OSError) as e:
            parser.error(f"--activations {args.activations}: {e}")
    if args.synthetic:
        try:
            n, d = (int(v) for v in args.synthetic.split(":"))
        except ValueError:
            parser.error(f"--synthetic must be N:D (tokens:dimension), got {args.synthetic!r}")
        return TensorSource(synthetic_activations(n, d))
    parser.error("give --activations FILE or --synthetic N:D")


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig / GBAConfig field (``out_dir`` is ``--out``), typed by its
    annotation (a string: the config modules use postponed annotations), e.g. ``Optional[float]``
    parses as float; help line and choices from the field's metadata, default from the field."""
    parsers = {"bool": _boolean, "int": int, "float": float, "str": str}
    model = parser.add_argument_group("TrainConfig (each also a key of --config's JSON)")
    gba = parser.add_argument_group("Group Bias Adaptation (with --bias-adaptation gba)")

    def add(group, f, prefix=""):
        kind = str(f.type).removeprefix("Optional[").removesuffix("]")
        default = f.default_factory() if callable(f.default_factory) else f.default
        shown = "unset" if default is None else default
        group.add_argument("--" + prefix + f.name.replace("_", "-"), dest=prefix + f.name, type=parsers[kind],
                           default=None, choices=f.metadata.get("choices"),
                           metavar="{true,false}" if kind == "bool" else None,
                           help=f"{f.metadata.get('help', '')} (default: {shown})")  # fmt: skip

    for f in fields(TrainConfig):
        if f.name not in ("gba", "out_dir"):
            add(model, f)
    for f in fields(GBAConfig):
        add(gba, f, prefix="gba.")


def _config(args) -> TrainConfig:
    values = {}
    if args.config:
        with open(args.config) as fh:
            values = json.load(fh)
    gba = dict(values.get("gba", {}))
    for key, value in vars(args).items():
        if value is None:
            continue
        if key.startswith("gba."):
            gba[key[4:]] = value
        elif key in {f.name for f in fields(TrainConfig)}:
            values[key] = value
    values["gba"] = gba
    return TrainConfig.from_dict(values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prismkit.sae", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an SAE")
    train.add_argument("--config", help="JSON file of TrainConfig fields")
    train.add_argument("--resume", help="checkpoint directory to continue from (<run>/checkpoints/step_<n>; the "
                       "run goes on in <run> unless --out is given)")  # fmt: skip
    train.add_argument("--out", dest="out_dir", default=None,
                       help="output directory: metrics.jsonl, checkpoints/, sae/ (default: none written)")  # fmt: skip
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--activations", help=".npy (memory-mapped), .safetensors or .pt file of [N, d] activations")
    train.add_argument("--synthetic", help="N:D synthetic activations instead of a file (a quick try-out)")
    _add_config_flags(train)
    ev = sub.add_parser("eval", help="evaluate a saved SAE (FVU, L0, dead fraction)")
    ev.add_argument(
        "--sae", required=True, help="an SAE directory: prismkit's (e.g. <out>/sae), SAELens' or sparsify's"
    )
    ev.add_argument("--activations", help=".npy, .safetensors or .pt file of [N, d] activations")
    ev.add_argument("--synthetic", help="N:D synthetic activations instead of a file")
    ev.add_argument("--tokens", type=int, default=65_536, help="tokens to evaluate on (default: 65536)")
    ev.add_argument("--batch-size", type=int, default=4096, help="tokens per forward (default: 4096)")
    args = parser.parse_args(argv)
    sub_parser = train if args.command == "train" else ev

    try:
        config = _config(args) if args.command == "train" and not args.resume else None
    except (ValueError, TypeError) as e:
        sub_parser.error(str(e))
    source = _source(args, sub_parser)
    if args.command == "eval":
        try:
            sae = load_sae(args.sae)
        except (ValueError, OSError) as e:
            ev.error(f"--sae {args.sae}: {e}")
        print(json.dumps(evaluate(sae, source, min(args.tokens, len(source)), args.batch_size), indent=2))
        return 0
    try:
        if args.resume:
            overrides = {
                k: v for k, v in vars(args).items() if v is not None and k in {f.name for f in fields(TrainConfig)}
            }
            trainer = Trainer.resume(args.resume, source, **overrides)
        else:
            trainer = Trainer(config, source)
    except (ValueError, TypeError, OSError) as e:
        train.error(str(e))
    trainer.fit(progress=not args.no_progress)
    if trainer.interrupted:
        where = trainer.config.out_dir
        saved = f"; checkpoint in {where}/checkpoints/step_{trainer.step}" if where else " (no --out: nothing saved)"
        print(f"interrupted at step {trainer.step}{saved}", file=sys.stderr)
        if where:
            print(f"continue with: python -m prismkit.sae train --resume {where}/checkpoints/step_{trainer.step} "
                  "--activations ...", file=sys.stderr)  # fmt: skip
        return 130
    if trainer.rank == 0:
        result = evaluate(trainer.trained_sae(), source, min(65_536, len(source)))  # normalization folded in
        print(json.dumps({"final": result, "out_dir": trainer.config.out_dir}, indent=2))
    if torch.distributed.is_initialized():
        # every rank waits for rank 0's evaluation: a rank that tears its gloo group down while
        # another still uses it can abort ("terminate called without an active exception"); the
        # DDP wrapper (its reducer holds the group) goes first, while the group is still alive
        trainer.model = trainer.sae
        gc.collect()
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
