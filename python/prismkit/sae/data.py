"""Where training activations come from, and how they are shuffled.

A source is a stream of token activations [n, d] that can be read from any position:

* ``TensorSource``: a tensor already in memory ([N, d], or [..., d] flattened).
* ``MemmapSource``: a ``.npy`` file (memory-mapped, so a cache larger than RAM works) or a
  ``.safetensors``/``.pt`` file holding one tensor; ``cache_activations`` writes one.
* ``HookSource``: activations captured by a forward hook on ``model.get_submodule(module_path)``
  while the model runs over ``inputs`` (a sequence of model-input batches; ``call(model, batch)``
  runs one, by default ``model(**batch)``); optional ``mask_fn`` picks the real (non-padding) tokens. Reading is sequential; a jump back (resume) replays the
  model from the start.

Streams wrap around at their end (epochs). ``ShuffleBuffer`` turns a stream into training batches:
it fills a buffer of ``buffer_tokens`` tokens (plus the few left over from the previous fill),
permutes it with a generator seeded by (seed, fill number), and cuts it into batches. Its whole
state is (fill number, stream position, batch within the fill, leftover tokens), so a resumed run
sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["TensorSource", "MemmapSource", "HookSource", "ShuffleBuffer", "cache_activations", "capture_activations"]


class TensorSource:
    """``read`` returns a view of the data where the range does not wrap (callers must not write to it)."""

    def __init__(self, activations: Tensor):
        if activations.dim() < 2:
            raise ValueError(f"TensorSource: expected activations [N, d], got shape {list(activations.shape)}")
        self.data = activations.reshape(-1, activations.shape[-1])
        if self.data.shape[0] == 0:
            raise ValueError("TensorSource: no tokens")
        self.d_in = self.data.shape[1]

    def __len__(self) -> int:
        return self.data.shape[0]

    def read(self, start: int, n: int) -> Tensor:
        N = self.data.shape[0]
        first = start % N
        if first + n <= N:  # one contiguous range (the usual case): a slice, no index gather
            rows = self.data[first : first + n]
        else:
            rows = self.data[torch.arange(start, start + n) % N]
        return rows.float() if rows.dtype in (torch.float16, torch.bfloat16) else rows


class MemmapSource(TensorSource):
    def __init__(self, path: str):
        path = os.fspath(path)
        if path.endswith(".npy"):
            import numpy as np

            array = np.load(path, mmap_mode="r")
            data = _readonly_tensor(array)
        elif path.endswith(".safetensors"):
            from safetensors.torch import load_file

            tensors = load_file(path)
            if len(tensors) != 1:
                raise ValueError(f"MemmapSource: {path} must hold exactly one tensor, found {sorted(tensors)}")
            data = next(iter(tensors.values()))
        elif path.endswith(".pt"):
            data = torch.load(path, mmap=True, weights_only=True)
        else:
            raise ValueError(f"MemmapSource: unsupported file {path!r} (use .npy, .safetensors or .pt)")
        super().__init__(data)
        self.path = path


def _readonly_tensor(array) -> Tensor:
    import warnings

    with warnings.catch_warnings():  # read-only memmap: we never write to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def _default_call(model: nn.Module, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def capture_activations(model: nn.Module, module_path: str, inputs, mask: Optional[Tensor] = None,
                        call: Callable = _default_call) -> Tensor:  # fmt: skip
    """One forward ``call(model, inputs)`` (default ``model(**inputs)`` for a dict, else
    ``model(inputs)``), returning the output of ``module_path`` as [n_tokens, d] (rows where
    ``mask`` is true when given)."""
    module = model.get_submodule(module_path)
    captured = []

    def hook(_module, _args, output):
        captured.append((output[0] if isinstance(output, tuple) else output).detach())

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            call(model, inputs)
    finally:
        handle.remove()
    acts = captured[0]
    if mask is not None:
        return acts[mask.bool()]
    return acts.reshape(-1, acts.shape[-1])


class HookSource:
    """Activations read live from a model: ``model``'s submodule at ``module_path`` is hooked while
    ``call(model, inputs[i])`` runs for each input in turn (``_default_call``: ``model(**batch)``
    for dict batches, ``model(batch)`` otherwise); ``mask_fn(batch)`` picks the tokens to keep
    (e.g. the attention mask, so padding is left out). A stream that cycles over the inputs:
    ``read(start, n)`` gives its tokens start .. start + n (reading backwards replays it from the
    beginning), so a trainer can draw any number of tokens. ``d_in``
    comes from the first batch unless given. It has no length; the trainer cannot warn about
    passes over the data.

    >>> source = HookSource(model, "encoder.layer.3", batches, mask_fn=lambda b: b["attention_mask"])
    """

    def __init__(self, model: nn.Module, module_path: str, inputs: Sequence,
                 mask_fn: Optional[Callable] = None, d_in: Optional[int] = None,
                 call: Callable = _default_call):  # fmt: skip
        self.model, self.module_path, self.inputs, self.mask_fn = model, module_path, inputs, mask_fn
        self.call = call
        if len(inputs) == 0:
            raise ValueError("HookSource: no inputs")
        model.get_submodule(module_path)  # fails early on a wrong path
        self._rewind()
        self._chunk = self._next_chunk()  # the stream's start, kept: it also tells d_in
        self.d_in = self._chunk.shape[1] if d_in is None else d_in

    def _rewind(self):
        self._batch, self._pos, self._chunk = 0, 0, None  # next input batch, stream position, current chunk

    def _next_chunk(self) -> Tensor:
        inputs = self.inputs[self._batch % len(self.inputs)]
        self._batch += 1
        mask = self.mask_fn(inputs) if self.mask_fn is not None else None
        # Kept on the CPU: the shuffle buffer lives there and moves each batch to the SAE's device.
        return capture_activations(self.model, self.module_path, inputs, mask, self.call).float().cpu()

    def read(self, start: int, n: int) -> Tensor:
        if start < self._pos:
            self._rewind()
        parts, want, empty_in_a_row = [], n, 0
        while want > 0:
            if self._chunk is None or self._chunk.shape[0] == 0:
                self._chunk = self._next_chunk()
                empty_in_a_row = empty_in_a_row + 1 if self._chunk.shape[0] == 0 else 0
                if empty_in_a_row > len(self.inputs):
                    raise ValueError("HookSource: no input batch yields any token (check mask_fn)")
            skip = min(start - self._pos, self._chunk.shape[0])
            if skip > 0:
                self._chunk, self._pos = self._chunk[skip:], self._pos + skip
                continue
            take = self._chunk[:want]
            parts.append(take)
            self._chunk, self._pos, want = self._chunk[take.shape[0] :], self._pos + take.shape[0], want - take.shape[0]
        return torch.cat(parts) if parts else torch.empty(0, self.d_in)


def cache_activations(
    source, num_tokens: int, path: str, chunk_tokens: int = 65_536, progress: bool = True
) -> MemmapSource:
    """Write ``num_tokens`` tokens of a source to a ``.npy`` file (float32), once, and return a
    ``MemmapSource`` over it."""
    import numpy as np
    from tqdm.auto import tqdm

    path = os.fspath(path)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(num_tokens, source.d_in))
    with tqdm(total=num_tokens, unit="tok", desc="caching activations", disable=not progress) as bar:
        for start in range(0, num_tokens, chunk_tokens):
            n = min(chunk_tokens, num_tokens - start)
            out[start : start + n] = source.read(start, n).float().cpu().numpy()
            bar.update(n)
    out.flush()
    del out
    return MemmapSource(path)


class ShuffleBuffer:
    """Training batches of ``batch_size`` tokens from a source, shuffled through a buffer of
    ``buffer_tokens`` tokens. Under torch.distributed every rank builds the same global batch and
    takes its own contiguous slice (``rank``, ``world_size``)."""

    def __init__(self, source, batch_size: int, buffer_tokens: int = 65_536, seed: int = 0,
                 rank: int = 0, world_size: int = 1):  # fmt: skip
        if batch_size < 1 or batch_size % world_size:
            raise ValueError(
                f"ShuffleBuffer: batch_size {batch_size} must be >= 1 and divisible by the world size {world_size}"
            )
        self.source, self.batch_size, self.seed = source, batch_size, seed
        self.buffer_tokens = max(buffer_tokens, batch_size)
        self.rank, self.world_size = rank, world_size
        self.fill, self.position, self.batch_in_fill = 0, 0, 0
        self.leftover = torch.empty(0, source.d_in)
        self._buffer: Optional[Tensor] = None

    def _load_fill(self) -> None:
        fresh = self.source.read(self.position, self.buffer_tokens)
        data = torch.cat([self.leftover.to(fresh.dtype), fresh])
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.fill)
        self._buffer = data[torch.randperm(data.shape[0], generator=gen)]

    def next_batch(self) -> Tensor:
        if self._buffer is None:
            self._load_fill()
        start = self.batch_in_fill * self.batch_size
        if start + self.batch_size > self._buffer.shape[0]:
            self.leftover = self._buffer[start:].clone()
            self.position += self.buffer_tokens
            self.fill, self.batch_in_fill = self.fill + 1, 0
            self._load_fill()
            start = 0
        self.batch_in_fill += 1
        batch = self._buffer[start : start + self.batch_size]
        per_rank = self.batch_size // self.world_size
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __iter__(self) -> Iterable[Tensor]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"fill": self.fill, "position": self.position, "batch_in_fill": self.batch_in_fill,
                "leftover": self.leftover}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.fill, self.position = int(state["fill"]), int(state["position"])
        self.batch_in_fill = int(state["batch_in_fill"])
        self.leftover = state["leftover"]
        self._buffer = None
