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
import time
from collections.abc import Mapping, MutableMapping

import numpy as np

from .executable import Executable, check_array, describe_shape
from .random_inputs import COUNTER_INPUT, SEED_INPUT, as_scalar

EPOCH_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)


class LiveArrays(MutableMapping):
    """name -> the live array the compiled program reads and writes.

    Every kind of assignment (``params["W"] = v``, ``update``, ``setdefault``, ``|=``)
    copies into the live array, which the program keeps pointing at; the value must
    have the array's shape and a dtype that converts to its dtype within the same kind
    (float64 into float32, not float into int). Names are fixed: adding or deleting
    one is an error. Several values at once are all checked before any is copied.
    """

    def __init__(self, arrays: dict, what: str, lock=None):
        self._arrays = dict(arrays)
        self._what = what
        self._lock = lock

    def __getitem__(self, name):
        return self._arrays[name]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __contains__(self, name):
        return name in self._arrays

    def _checked(self, name, value) -> np.ndarray:
        """`value` as an array of the live array's shape and dtype, or an error naming `name`."""
        if name not in self._arrays:
            raise KeyError(f"no {self._what} named {name!r}; the step has {', '.join(map(repr, self._arrays))}")
        live = self._arrays[name]
        value = np.asarray(value)
        if value.dtype.kind not in "biuf" or not np.can_cast(value.dtype, live.dtype, "same_kind"):
            raise TypeError(f"{self._what} {name!r} has dtype {live.dtype}, got a value of dtype {value.dtype} "
                            f"(which does not convert to it: same kind of number or a smaller one)")
        if value.shape != live.shape:
            raise ValueError(f"{self._what} {name!r} has shape {describe_shape(live.shape)}, got a value of shape "
                             f"{describe_shape(value.shape)}")
        return value

    def _assign(self, pairs) -> None:
        """Check every (name, value) first, then copy them all (a bad one changes nothing)."""
        checked = []
        for name, value in pairs:
            value = self._checked(name, value)
            checked.append((self._arrays[name], value))
        if self._lock is None:
            for live, value in checked:
                np.copyto(live, value, casting="same_kind")
        else:
            with self._lock:  # never while a step reads or writes them
                for live, value in checked:
                    np.copyto(live, value, casting="same_kind")

    def __setitem__(self, name, value):
        self._assign([(name, value)])

    def update(self, other=(), /, **more):
        pairs = list(other.items() if isinstance(other, Mapping) else other) + list(more.items())
        self._assign(pairs)

    def __delitem__(self, name):
        raise TypeError(f"the {self._what} arrays of a compiled step cannot be removed (tried {name!r})")

    def __ior__(self, other):
        self.update(other)
        return self

    def __or__(self, other):
        return {**self._arrays, **dict(other)}

    def __repr__(self):
        return f"{type(self).__name__}({self._arrays!r})"


class TrainStep:
    """``step(**inputs) -> float``: the loss before the update; parameters change in place.

    Labels out of range raise IndexError: labels given as inputs before anything runs;
    labels computed inside the graph (an argmax, arithmetic) after the step, whose update
    has then already run (the step count is advanced; the message says so).

    ``params``, ``state`` and ``buffers`` (non-trainable state such as batch norm's running
    statistics, which the step updates in place) map names to the live arrays (``LiveArrays``:
    assigning copies into them). Calls, epochs, saves, loads and assignments take the
    executable's lock, so threads sharing a step each get their own step number.

    Random nodes draw with the step's seed and its 1-based step number (``rng_seed``,
    ``rng_counter``, bound here and advanced by the native epoch loop too), so a saved and
    loaded step resumes the same sequence of masks.
    """

    def __init__(self, program, params: dict, state: dict, names: dict, lr, *, compile_function=None,
                 diagnose=None, debug_nans: bool = False, seed: int = 0, buffers: dict | None = None):
        self.params, self.state = LiveArrays(params, "parameter"), LiveArrays(state, "optimizer state")
        self.buffers = LiveArrays(buffers or {}, "buffer")
        self.step_count = 0
        self.compile_seconds: dict = {}  # stage -> seconds of the compile that made it (set by the compiler)
        self.lr = lr
        self.debug_nans = debug_nans
        self._names = names  # {"data": [...], "step": name, "lr": name}
        self._compile_function = compile_function
        self._diagnose = diagnose
        self._rng = np.random.default_rng(seed)
        self._step_value = np.zeros((), np.float64)
        self._lr_value = np.zeros((), np.float64)
        # random nodes (dropout, noise): keyed by the step's seed, a new draw per step (its 1-based number)
        self._seed_value, self._counter_value = as_scalar("seed", seed), np.zeros((), np.int64)
        bound = {**params, **state, **(buffers or {}), names["step"]: self._step_value, names["lr"]: self._lr_value,
                 SEED_INPUT: self._seed_value, COUNTER_INPUT: self._counter_value}
        self._program = program
        self._executable = Executable.of(program, single=True, bound=bound, persistent_outputs=True)
        self.params._lock = self.state._lock = self.buffers._lock = self._executable.lock  # wait for a running step
        epoch = program.plan.get("epoch")
        self._epoch = EPOCH_TYPE(program.addresses[epoch]) if epoch else None
        self.last_epoch_losses = np.empty(0)

    # ---- one step ------------------------------------------------------------------------------

    def lr_at(self, step: int) -> float:
        """The learning rate of 1-based step `step` (a schedule is called with the 0-based count)."""
        return float(self.lr(step - 1)) if callable(self.lr) else float(self.lr)

    def __call__(self, **inputs) -> float:
        exe = self._executable
        dims = exe.check(inputs)
        with exe.lock:  # the step number is read and advanced by one call at a time
            step = self.step_count + 1
            self._step_value[...] = self._counter_value[...] = step
            self._lr_value[...] = self.lr_at(step)
            before = self._snapshot() if self.debug_nans else None
            loss = float(exe.run(inputs, dims, check_faults=False))
            self.step_count = step
            if before is not None:
                self._check_finite(step, loss, before, inputs)
            exe.check_faults(note=f"; step {step} has already updated the parameters and optimizer state")
        return loss

    def _live(self) -> dict:
        """Every array a step writes: parameters, optimizer state and buffers, by name."""
        return {**self.params, **self.state, **self.buffers}

    def _snapshot(self) -> dict:
        return {name: array.copy() for name, array in self._live().items()}

    def _check_finite(self, step: int, loss: float, before: dict, inputs: dict):
        bad = [name for name, array in self._live().items() if not np.all(np.isfinite(array))]
        if math.isfinite(loss) and not bad:
            return
        what = "the loss" if not math.isfinite(loss) else f"{bad[0]!r}"
        where = ""
        if self._diagnose is not None:
            values = {**before, **inputs, self._names["step"]: np.float64(step),
                      self._names["lr"]: np.float64(self.lr_at(step)), SEED_INPUT: self._seed_value,
                      COUNTER_INPUT: np.int64(step)}
            where = "; " + self._diagnose(values)
        for name, array in before.items():  # leave the parameters as they were before the bad step
            np.copyto(self._live()[name], array)
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
        rows, bound = None, {}
        for name in names:
            array, spec = inputs[name], specs[name]
            full = dict(spec, shape=["rows"] + list(spec["shape"][1:]))
            dims = {}
            check_array(full, array, dims)
            if rows is None:
                rows = dims["rows"]
            elif dims["rows"] != rows:
                raise ValueError(f"run_epoch: input {name!r} has {dims['rows']} rows, another input has {rows}")
            bound.update(dims)
        self._executable.check_indices(inputs)  # every label of the data, before any batch runs
        batch_size = int(min(batch_size, rows))
        rng = self._rng if seed is None else np.random.default_rng(seed)
        order = rng.permutation(rows).astype(np.int64) if shuffle else np.arange(rows, dtype=np.int64)
        n_batches = -(-rows // batch_size)
        batch_dim = specs[names[0]]["shape"][0]
        for size in {batch_size, rows - batch_size * (n_batches - 1)}:  # every batch's size, before any runs
            self._executable.check_sizes_for(dict(bound, **{batch_dim: size}))
        if self._epoch is None or self.debug_nans:
            return self._epoch_in_python(inputs, order, batch_size, n_batches, rows)
        losses = np.empty(n_batches, dtype=np.float64)
        batch_buffers = {name: np.empty((batch_size,) + tuple(specs[name]["shape"][1:]), dtype=specs[name]["dtype"])
                         for name in names}
        exe = self._executable
        with exe.lock:  # the step numbers of the epoch are taken and advanced by one call at a time
            first = self.step_count
            lrs = np.array([self.lr_at(first + b + 1) for b in range(n_batches)], dtype=np.float64)
            arrays = [order, lrs, losses] + [inputs[name] for name in names]
            table = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
            exe.prepare({batch_dim: batch_size}, batch_buffers)
            self._epoch(exe.table_address, exe.dims_address, ctypes.addressof(table), rows, batch_size, first)
            exe.restore_dims()
            self.step_count = first + n_batches
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
        """An inference function of `nodes` reading the live parameters and buffers (no copies), with
        batch norm and dropout in inference mode: calling it never changes the step's arrays."""
        if self._compile_function is None:
            raise RuntimeError("this step was loaded without the compiler; compile inference functions with compiler.compile")
        return self._compile_function(nodes, {**self.params, **self.buffers})

    def save(self, path) -> None:
        """Parameters, optimizer state, buffers and step count as .npz, written atomically.

        The file is written to a temporary next to `path` and renamed over it. A save that
        is killed leaves that one temporary (``.NAME.*.symprop-partial``); the next save to
        `path` removes it."""
        path = os.fspath(path)
        with self._executable.lock:  # one consistent snapshot, never half a step
            arrays = {f"param/{k}": v.copy() for k, v in self.params.items()}
            arrays.update({f"state/{k}": v.copy() for k, v in self.state.items()})
            arrays.update({f"buffer/{k}": v.copy() for k, v in self.buffers.items()})
            arrays["step_count"] = np.asarray(self.step_count, dtype=np.int64)
        write_atomically(path, lambda f: np.savez(f, **arrays))

    def load(self, path) -> None:
        """Read what ``save`` wrote into the live arrays.

        Everything is checked first (names, shapes, dtypes, a non-negative integer step
        count): a checkpoint that does not fit raises ValueError and changes nothing. A file
        written before buffers existed (no ``buffer/`` entries) leaves the buffers as they are."""
        values, step_count = self._read_checkpoint(os.fspath(path))
        with self._executable.lock:
            for live, value in values:
                np.copyto(live, value)
            self.step_count = step_count

    def _read_checkpoint(self, path: str) -> tuple:
        try:
            data = np.load(path, allow_pickle=False)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception as error:  # not an archive: BadZipFile, ValueError, EOFError, ...
            raise ValueError(f"{path}: not a checkpoint written by TrainStep.save ({error})") from None
        if not hasattr(data, "files"):
            raise ValueError(f"{path}: not a checkpoint written by TrainStep.save (a single array, not an .npz archive)")
        try:
            with data:
                groups = [("param", self.params), ("state", self.state)]
                if any(name.startswith("buffer/") for name in data.files):  # older files have none
                    groups.append(("buffer", self.buffers))
                expected = {f"{group}/{k}" for group, arrays in groups for k in arrays} | {"step_count"}
                if set(data.files) != expected:
                    missing, extra = sorted(expected - set(data.files)), sorted(set(data.files) - expected)
                    raise ValueError(f"{path}: checkpoint does not match this step (missing {missing}, unexpected {extra})")
                values = []
                for group, arrays in groups:
                    for name, array in arrays.items():
                        value = data[f"{group}/{name}"]
                        if value.shape != array.shape or value.dtype != array.dtype:
                            raise ValueError(f"{path}: {group} {name!r} is {describe_shape(value.shape)} {value.dtype}, "
                                             f"expected {describe_shape(array.shape)} {array.dtype}")
                        values.append((array, value))
                count = data["step_count"]
        except ValueError:
            raise
        except Exception as error:  # a damaged member: zlib, CRC or format errors
            raise ValueError(f"{path}: damaged checkpoint ({type(error).__name__}: {error})") from None
        if count.shape != () or count.dtype.kind not in "iu" or int(count) < 0:
            raise ValueError(f"{path}: step_count must be a non-negative integer scalar, got {count!r} "
                             f"({count.dtype}, shape {describe_shape(count.shape)})")
        return values, int(count)

    @property
    def from_cache(self) -> bool:
        """Whether the step's machine code came from the on-disk cache rather than a fresh compile."""
        return self._executable.from_cache

    def kernels(self) -> list:
        return self._executable.kernels()

    @property
    def threads(self) -> int:
        """Threads the step's large kernels split across (``compile_step(..., threads=)``)."""
        return self._executable.threads

    def cost(self, **inputs):
        """Per-kernel cost of one step on `inputs` (parameters and state are restored afterwards)."""
        before = self._snapshot()
        count = self.step_count
        try:
            step = self.step_count + 1
            self._step_value[...] = self._counter_value[...] = step
            self._lr_value[...] = self.lr_at(step)
            return self._executable.cost(**inputs)
        finally:
            for name, array in before.items():
                np.copyto(self._live()[name], array)
            self.step_count = count

    def llvm_ir(self, optimized: bool = False) -> str:
        return self._executable.llvm_ir(optimized)

    def asm(self) -> str:
        return self._executable.asm()

    def __repr__(self):
        return (f"<symprop TrainStep params={list(self.params)} data={self._names['data']} "
                f"step={self.step_count}>")


PARTIAL_SUFFIX = ".symprop-partial"


def write_atomically(path: str, write) -> None:
    """Call `write(file)` on a temporary beside `path`, fsync it and rename it over `path`.

    Temporaries of earlier writes to `path` that were killed are removed first: a killed
    write leaves at most one temporary, until the next write. (Each temporary is locked
    while written, so one that another process is still writing is left alone.)"""
    directory, name = os.path.split(os.path.abspath(path))
    _remove_abandoned(directory, name)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=PARTIAL_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            _lock_file(f)
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.replace(temporary, path)  # still locked: a cleaner never sees it unlocked and half written
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _lock_file(f) -> bool:
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _remove_abandoned(directory: str, name: str) -> None:
    """Delete temporaries of `name` whose writer is gone (unlocked; without flock: older than an hour)."""
    prefix = f".{name}."
    try:
        candidates = [entry for entry in os.scandir(directory)
                      if entry.name.startswith(prefix) and entry.name.endswith(PARTIAL_SUFFIX)]
    except OSError:
        return
    try:
        import fcntl  # noqa: F401
        has_flock = True
    except ImportError:
        has_flock = False
    for entry in candidates:
        try:
            if has_flock:
                with open(entry.path, "rb") as f:
                    info = os.fstat(f.fileno())
                    # unlocked: its writer is gone (a writer locks before its first byte; an empty
                    # one may be a writer between creating and locking it, unless it is old)
                    if (info.st_size or time.time() - info.st_mtime > 60) and _lock_file(f):
                        os.unlink(entry.path)
            elif time.time() - entry.stat().st_mtime > 3600:
                os.unlink(entry.path)
        except OSError:
            pass
