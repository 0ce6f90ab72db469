"""The compiled training step: forward, backward and update in one native call.

Parameters, optimizer state, the step count and the learning rate live in
arrays bound to the program once; a step only points the program at the
batch. ``run_epoch`` runs every mini-batch of a data set in one native call.
"""
from __future__ import annotations

import ctypes
import math
import os
import tempfile

import numpy as np

from .executable import Executable, check_array, describe_shape

EPOCH_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)


class LiveArrays(dict):
    """name -> the live array the compiled program reads and writes.

    Assigning ``step.params["W"] = value`` copies into the live array (the program
    keeps its pointer); a new name, or a value of another shape, is an error.
    """

    def __init__(self, arrays: dict, what: str):
        super().__init__(arrays)
        self._what = what

    def __setitem__(self, name, value):
        if name not in self:
            raise KeyError(f"no {self._what} named {name!r}; the step has {', '.join(map(repr, self))}")
        live = self[name]
        value = np.asarray(value)
        if value.shape != live.shape:
            raise ValueError(f"{self._what} {name!r} has shape {live.shape}, got a value of shape {value.shape}")
        np.copyto(live, value, casting="same_kind")

    def __delitem__(self, name):
        raise TypeError(f"the {self._what} arrays of a compiled step cannot be removed")


class TrainStep:
    """``step(**inputs) -> float``: the loss before the update; parameters change in place.

    ``params`` and ``state`` are dicts of the live arrays (name -> ndarray).
    """

    def __init__(self, program, params: dict, state: dict, names: dict, lr, *, compile_function=None,
                 diagnose=None, debug_nans: bool = False, seed: int = 0):
        self.params, self.state = LiveArrays(params, "parameter"), LiveArrays(state, "optimizer state")
        self.step_count = 0
        self.lr = lr
        self.debug_nans = debug_nans
        self._names = names  # {"data": [...], "step": name, "lr": name}
        self._compile_function = compile_function
        self._diagnose = diagnose
        self._rng = np.random.default_rng(seed)
        self._step_value = np.zeros((), np.float64)
        self._lr_value = np.zeros((), np.float64)
        bound = {**params, **state, names["step"]: self._step_value, names["lr"]: self._lr_value}
        self._program = program
        self._executable = Executable.of(program, single=True, bound=bound, persistent_outputs=True)
        epoch = program.plan.get("epoch")
        self._epoch = EPOCH_TYPE(program.addresses[epoch]) if epoch else None
        self.last_epoch_losses = np.empty(0)

    # ---- one step ------------------------------------------------------------------------------

    def lr_at(self, step: int) -> float:
        """The learning rate of 1-based step `step` (a schedule is called with the 0-based count)."""
        return float(self.lr(step - 1)) if callable(self.lr) else float(self.lr)

    def __call__(self, **inputs) -> float:
        step = self.step_count + 1
        self._step_value[...] = step
        self._lr_value[...] = self.lr_at(step)
        before = self._snapshot() if self.debug_nans else None
        loss = float(self._executable(**inputs))
        self.step_count = step
        if before is not None:
            self._check_finite(step, loss, before, inputs)
        return loss

    def _snapshot(self) -> dict:
        return {name: array.copy() for name, array in {**self.params, **self.state}.items()}

    def _check_finite(self, step: int, loss: float, before: dict, inputs: dict):
        bad = [name for name, array in {**self.params, **self.state}.items() if not np.all(np.isfinite(array))]
        if math.isfinite(loss) and not bad:
            return
        what = "the loss" if not math.isfinite(loss) else f"{bad[0]!r}"
        where = ""
        if self._diagnose is not None:
            values = {**before, **inputs, self._names["step"]: np.float64(step),
                      self._names["lr"]: np.float64(self.lr_at(step))}
            where = "; " + self._diagnose(values)
        for name, array in before.items():  # leave the parameters as they were before the bad step
            np.copyto({**self.params, **self.state}[name], array)
        self.step_count = step - 1
        raise FloatingPointError(f"step {step}: {what} is not finite{where}")

    # ---- a whole epoch -------------------------------------------------------------------------

    def run_epoch(self, inputs: dict, batch_size: int, shuffle: bool = True, seed: int | None = None) -> float:
        """One pass over `inputs` (full data arrays, first axis the batch) in shuffled mini-batches.

        The last batch holds the remaining rows when batch_size does not divide the data (it is
        run, smaller, not dropped). Returns the mean loss over samples (each batch's loss
        weighted by its row count); ``last_epoch_losses`` holds the per-batch losses.
        """
        names = self._names["data"]
        if set(inputs) != set(names):
            raise TypeError(f"run_epoch: expected data inputs {sorted(names)}, got {sorted(inputs)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"run_epoch: batch_size must be an int >= 1, got {batch_size!r}")
        specs = {b["name"]: b for b in self._program.plan["buffers"] if b["name"] in names}
        rows = None
        for name in names:
            array, spec = inputs[name], specs[name]
            full = dict(spec, shape=["rows"] + list(spec["shape"][1:]))
            dims = {}
            check_array(full, array, dims)
            if rows is None:
                rows = dims["rows"]
            elif dims["rows"] != rows:
                raise ValueError(f"run_epoch: input {name!r} has {dims['rows']} rows, another input has {rows}")
        batch_size = int(min(batch_size, rows))
        rng = self._rng if seed is None else np.random.default_rng(seed)
        order = rng.permutation(rows).astype(np.int64) if shuffle else np.arange(rows, dtype=np.int64)
        n_batches = -(-rows // batch_size)
        if self._epoch is None or self.debug_nans:
            return self._epoch_in_python(inputs, order, batch_size, n_batches, rows)
        lrs = np.array([self.lr_at(self.step_count + b + 1) for b in range(n_batches)], dtype=np.float64)
        losses = np.empty(n_batches, dtype=np.float64)
        batch_dim = specs[names[0]]["shape"][0]
        batch_buffers = {name: np.empty((batch_size,) + tuple(specs[name]["shape"][1:]), dtype=specs[name]["dtype"])
                         for name in names}
        exe = self._executable
        arrays = [order, lrs, losses] + [inputs[name] for name in names]
        table = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        with exe.lock:
            exe.prepare({batch_dim: batch_size}, batch_buffers)
            self._epoch(exe.table_address, exe.dims_address, ctypes.addressof(table), rows, batch_size,
                        self.step_count)
            exe.restore_dims()
        self.step_count += n_batches
        self.last_epoch_losses = losses
        sizes = np.minimum(batch_size, rows - batch_size * np.arange(n_batches))
        return float(np.dot(losses, sizes) / rows)

    def _epoch_in_python(self, inputs, order, batch_size, n_batches, rows) -> float:
        losses = np.empty(n_batches)
        for b in range(n_batches):
            index = order[b * batch_size:(b + 1) * batch_size]
            losses[b] = self(**{name: np.ascontiguousarray(array[index]) for name, array in inputs.items()})
        self.last_epoch_losses = losses
        sizes = np.minimum(batch_size, rows - batch_size * np.arange(n_batches))
        return float(np.dot(losses, sizes) / rows)

    # ---- inference, saving -------------------------------------------------------------------------

    def function(self, nodes):
        """An inference function of `nodes` reading the live parameters (no copies)."""
        if self._compile_function is None:
            raise RuntimeError("this step was loaded without the compiler; compile inference functions with compiler.compile")
        return self._compile_function(nodes, self.params)

    def save(self, path) -> None:
        """Parameters, optimizer state and step count as .npz, written atomically."""
        path = os.fspath(path)
        arrays = {f"param/{k}": v for k, v in self.params.items()}
        arrays.update({f"state/{k}": v for k, v in self.state.items()})
        arrays["step_count"] = np.asarray(self.step_count, dtype=np.int64)
        directory = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".symprop-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def load(self, path) -> None:
        """Read what ``save`` wrote into the live arrays (shapes and dtypes must match)."""
        with np.load(os.fspath(path), allow_pickle=False) as data:
            expected = {f"param/{k}" for k in self.params} | {f"state/{k}" for k in self.state} | {"step_count"}
            if set(data.files) != expected:
                missing, extra = sorted(expected - set(data.files)), sorted(set(data.files) - expected)
                raise ValueError(f"{path}: checkpoint does not match this step (missing {missing}, unexpected {extra})")
            for group, arrays in (("param", self.params), ("state", self.state)):
                for name, array in arrays.items():
                    value = data[f"{group}/{name}"]
                    if value.shape != array.shape or value.dtype != array.dtype:
                        raise ValueError(f"{path}: {group} {name!r} is {describe_shape(value.shape)} {value.dtype}, "
                                         f"expected {describe_shape(array.shape)} {array.dtype}")
                    np.copyto(array, value)
            self.step_count = int(data["step_count"])

    def kernels(self) -> list:
        return self._executable.kernels()

    def cost(self, **inputs):
        """Per-kernel cost of one step on `inputs` (parameters and state are restored afterwards)."""
        before = self._snapshot()
        count = self.step_count
        try:
            step = self.step_count + 1
            self._step_value[...] = step
            self._lr_value[...] = self.lr_at(step)
            return self._executable.cost(**inputs)
        finally:
            for name, array in before.items():
                np.copyto({**self.params, **self.state}[name], array)
            self.step_count = count

    def llvm_ir(self, optimized: bool = False) -> str:
        return self._executable.llvm_ir(optimized)

    def asm(self) -> str:
        return self._executable.asm()

    def __repr__(self):
        return (f"<symprop TrainStep params={list(self.params)} data={self._names['data']} "
                f"step={self.step_count}>")
