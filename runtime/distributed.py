"""Data-parallel training over MPI (mpi4py): every rank holds the same parameters.

A ``DistributedStep`` runs two compiled programs per step (``compiler/distributed_step.py``):

1. the gradient program, on this rank's shard of the batch (n_r rows), writes
   n_r x the loss, n_r x each gradient and n_r x each Buffer's new value into
   views of one flat, contiguous buffer (``FlatLayout``; n_r itself is its last
   element);
2. one in-place ``Allreduce`` (MPI.SUM) over that flat buffer: every rank now
   holds the sums over the global batch and its row count N;
3. the update program scales by 1/N -- the loss is a mean over the global batch,
   so the gradient is sum_r n_r x (rank r's mean gradient) / N, exactly the
   gradient one process computes on the concatenated batch (up to summation
   order) -- clips by global norm if the optimizer does, and applies the same
   update on every rank.

One message per step whatever the number of parameters, and no copy: the
programs read and write the flat buffer's views directly. Parameters,
optimizer state and Buffers are broadcast from rank 0 when the step is made,
so every rank starts from rank 0's; afterwards the ranks stay bit-identical
because they apply the same machine code to the same summed buffer (on
identical CPUs; ``check_consistent`` verifies it). Buffers (batch norm's
running statistics) become the row-weighted mean of the ranks' new values.

mpi4py is imported only when a step is made (``pip install -e ".[mpi]"``);
this module imports without it (and without sympy).
"""
from __future__ import annotations

import hashlib
import math
import threading

import numpy as np

from .executable import Executable
from .random_inputs import COUNTER_INPUT, SEED_INPUT, as_scalar
from .training import LiveArrays, TrainStep, write_atomically

INSTALL_HINT = 'pip install -e ".[mpi]" (mpi4py and the mpich wheel, which provides mpiexec and libmpi)'
GRADIENT_SUFFIX = "__gradient_sum"  # the gradient program writes n_r x d loss / d param into <param>__gradient_sum
SUM_SUFFIX = "__sum"                # and n_r x a Buffer's new value into <buffer>__sum
LOSS_SUM_INPUT = "loss_sum"         # n_r x the shard's mean loss
ROWS_INPUT = "shard_rows"           # n_r, the rows of this rank's shard (a scalar the gradient program reads)
INVERSE_ROWS_INPUT = "inverse_global_rows"  # 1 / N, read by the update program
ROWS_ENTRY = "global_rows"          # the flat buffer's last element: n_r before the Allreduce, N after
ALIGNMENT = 64                      # bytes: every view starts on a cache line


class MPIUnavailable(ImportError):
    """mpi4py (or the MPI library under it) cannot be imported."""


def mpi():
    """The mpi4py.MPI module, or MPIUnavailable saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise MPIUnavailable(f"data-parallel training needs mpi4py and an MPI library: {INSTALL_HINT} "
                             f"({error})") from None
    return MPI


def world():
    """MPI.COMM_WORLD: every process ``mpiexec`` started."""
    return mpi().COMM_WORLD


class SingleProcess:
    """A communicator of one rank, without MPI: ``compile_step(..., distributed=SingleProcess())`` runs
    the split step (gradient program, sum, update program) in this process alone -- the same numbers
    as the ranks of a real run with one rank, for tests and for timing the split."""

    rank, size = 0, 1

    def Allreduce(self, sendbuf, recvbuf, op=None):  # noqa: N802 (mpi4py's names)
        pass

    def Iallreduce(self, sendbuf, recvbuf, op=None):  # noqa: N802
        return None  # nothing to wait for

    def Bcast(self, buf, root=0):  # noqa: N802
        pass

    def bcast(self, obj, root=0):
        return obj

    def allgather(self, obj):
        return [obj]

    def Barrier(self):  # noqa: N802
        pass


def shard(rows: int, rank: int, size: int) -> slice:
    """The rows of a batch of `rows` that `rank` of `size` takes: contiguous, sizes differing by at most one."""
    return slice(rank * rows // size, (rank + 1) * rows // size)


def rank_seed(seed: int, rank: int) -> int:
    """The random nodes' key on `rank`: the step's seed on rank 0, a different stream on every other rank
    (so dropout masks are independent across the shards), wrapped into int64."""
    value = (int(seed) + rank * 0x9E3779B97F4A7C15) % 2**64
    return value - 2**64 if value >= 2**63 else value


class FlatLayout:
    """Where each summed array lives in the flat buffer: named entries, each starting on a 64-byte
    boundary (the zero padding between them sums to zero), then the loss and the row count."""

    def __init__(self, dtype: str, entries: list, completed_by: list | None = None):
        self.dtype = np.dtype(dtype)
        self.shapes = {name: tuple(shape) for name, shape in entries}  # the arrays the programs write
        # per entry, the gradient program's kernel that writes it last (overlapped steps; -1: unknown)
        self.completed_by = dict(zip(self.shapes, completed_by or [-1] * len(entries)))
        per_line = ALIGNMENT // self.dtype.itemsize
        self.offsets, offset = {}, 0
        for name, shape in [*entries, (LOSS_SUM_INPUT, ()), (ROWS_ENTRY, ())]:
            self.offsets[name] = offset
            offset += -(-max(math.prod(shape), 1) // per_line) * per_line
        self.shapes_all = {**self.shapes, LOSS_SUM_INPUT: (), ROWS_ENTRY: ()}
        self.size = offset

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def allocate(self) -> np.ndarray:
        """A zeroed flat buffer whose data starts on a 64-byte boundary."""
        raw = np.zeros(self.nbytes + ALIGNMENT, dtype=np.uint8)
        start = (-raw.ctypes.data) % ALIGNMENT
        return raw[start:start + self.nbytes].view(self.dtype)

    def buckets(self, bucket_bytes: int) -> list:
        """(start, stop, after) element ranges of the flat buffer summed one by one: consecutive
        entries of about `bucket_bytes`, each started once kernel `after` has run; the last bucket
        (after None: once the gradient program is done) ends with the loss and the row count."""
        names = list(self.shapes)
        ends = [self.offsets[n] for n in names[1:]] + [self.offsets[LOSS_SUM_INPUT]]
        buckets, start, after = [], 0, -1
        for name, end in zip(names, ends):
            after = max(after, self.completed_by[name])
            if (end - start) * self.dtype.itemsize >= bucket_bytes:
                buckets.append((start, end, after))
                start, after = end, -1
        buckets.append((start, self.size, None))
        return buckets

    def views(self, flat: np.ndarray) -> dict:
        """name -> a view of `flat` with the entry's shape (no copy)."""
        views = {}
        for name, shape in self.shapes_all.items():
            start = self.offsets[name]
            views[name] = flat[start:start + max(math.prod(shape), 1)].reshape(shape)
        return views


class DistributedStep:
    """``step(**shard) -> float``: one data-parallel step; returns the global batch's mean loss.

    Every rank calls it at the same time with its own shard of the global batch (any number of
    rows, zero included); ``run_epoch`` takes the whole data set on every rank and gives each
    rank its shard of every global batch. The interface is TrainStep's: ``params``, ``state``,
    ``buffers`` (live arrays, identical on every rank), ``step_count``, ``lr``, ``function``,
    ``save`` (rank 0 writes), ``load`` (rank 0 reads, every rank gets the values), ``kernels``.
    """

    def __init__(self, gradient_program, update_program, layout: FlatLayout, params: dict, state: dict,
                 buffers: dict, names: dict, lr, *, comm, seed: int = 0, compile_function=None,
                 bucket_bytes: int | None = None):
        if isinstance(comm, SingleProcess):
            self._in_place = self._sum = self._requests = None
        else:
            MPI = mpi()
            self._in_place, self._sum, self._requests = MPI.IN_PLACE, MPI.SUM, MPI.Request
        # overlapped: (start, stop, after) ranges of the flat buffer summed while the backward pass runs
        self.buckets = layout.buckets(bucket_bytes) if bucket_bytes else None
        self.comm, self.rank, self.size = comm, comm.rank, comm.size
        self.layout = layout
        self.lr = lr
        self.step_count = 0
        self._names = names
        self._lock = threading.Lock()
        self.params = LiveArrays(params, "parameter", self._lock)
        self.state = LiveArrays(state, "optimizer state", self._lock)
        self.buffers = LiveArrays(buffers, "buffer", self._lock)
        self._compile_function = compile_function
        self._rng = np.random.default_rng(seed)  # the same on every rank: the same shuffles
        self.flat = layout.allocate()
        self._views = layout.views(self.flat)
        self._rows_entry = self._views[ROWS_ENTRY]
        rows_spec = next(a for a in gradient_program.plan["arguments"] if a["name"] == ROWS_INPUT)
        self._rows_value = np.zeros((), rows_spec["dtype"])
        self._inverse_value = np.zeros((), layout.dtype)
        self._step_value, self._lr_value = np.zeros((), np.float64), np.zeros((), np.float64)
        self._seed_value = as_scalar(SEED_INPUT, rank_seed(seed, self.rank))
        self._counter_value = np.zeros((), np.int64)
        sums = {name: view for name, view in self._views.items() if name != ROWS_ENTRY}
        self._gradient = Executable.of(gradient_program, single=False, persistent_outputs=True, bound={
            **params, **buffers, **sums, ROWS_INPUT: self._rows_value,
            SEED_INPUT: self._seed_value, COUNTER_INPUT: self._counter_value})
        self._update = Executable.of(update_program, single=False, bound={
            **params, **state, **buffers, **sums, INVERSE_ROWS_INPUT: self._inverse_value,
            names["step"]: self._step_value, names["lr"]: self._lr_value})
        self.last_epoch_losses = np.empty(0)
        self._broadcast_from_root()

    # ---- one step ------------------------------------------------------------------------------

    def lr_at(self, step: int) -> float:
        """The learning rate of 1-based step `step` (a schedule is called with the 0-based count)."""
        return float(self.lr(step - 1)) if callable(self.lr) else float(self.lr)

    def __call__(self, **shard_inputs) -> float:
        names = self._names["data"]
        rows = {len(shard_inputs[name]) if isinstance(shard_inputs.get(name), np.ndarray) else -1 for name in names}
        empty = rows == {0} and set(shard_inputs) == set(names)
        dims = None if empty else self._gradient.check(shard_inputs)
        with self._lock:
            step = self.step_count + 1
            self._step_value[...] = self._counter_value[...] = step
            self._lr_value[...] = self.lr_at(step)
            if self.buckets is not None:
                self._overlapped_sum(shard_inputs, dims, None if empty else next(iter(rows)))
            else:
                if empty:  # this rank adds nothing, but takes part in the sum
                    self.flat.fill(0)
                else:
                    self._rows_value[...] = next(iter(rows))
                    self._gradient.run(shard_inputs, dims, check_faults=False)
                    self._rows_entry[...] = next(iter(rows))
                self.comm.Allreduce(self._in_place, self.flat, op=self._sum)
            total = float(self._rows_entry)
            if not total > 0:
                raise ValueError("a data-parallel step needs at least one row on some rank; every shard was empty")
            self._inverse_value[...] = 1.0 / total
            self._update.run({}, {})
            self.step_count = step
            loss = float(self._views[LOSS_SUM_INPUT]) / total
        if not empty:
            self._gradient.check_faults(note=f"; step {step} has already updated the parameters on every rank")
        return loss

    def _overlapped_sum(self, shard_inputs: dict, dims, rows) -> None:
        """The gradient program kernel by kernel, each bucket's nonblocking Iallreduce started once the
        kernel completing it has run (MPI is polled between kernels, so the sums progress), the last
        bucket -- the loss and the row count -- after the program; then wait for all. Every rank
        starts the same buckets in the same order (an empty shard: zeros, all at once)."""
        buckets, requests, started = self.buckets, [], 0

        def start(bucket) -> None:
            request = self.comm.Iallreduce(self._in_place, self.flat[bucket[0]:bucket[1]], op=self._sum)
            if request is not None:
                requests.append(request)

        def after(k: int) -> None:
            nonlocal started
            while started < len(buckets) - 1 and buckets[started][2] <= k:
                start(buckets[started])
                started += 1
            if requests:
                self._requests.Testall(requests)

        if rows is None:
            self.flat.fill(0)
        else:
            self._rows_value[...] = rows
            self._gradient.run_kernels(shard_inputs, dims, after)
            self._rows_entry[...] = rows
        for bucket in buckets[started:]:
            start(bucket)
        if requests:
            self._requests.Waitall(requests)

    # ---- a whole epoch -------------------------------------------------------------------------

    def run_epoch(self, inputs: dict, batch_size: int, shuffle: bool = True, seed: int | None = None) -> float:
        """One pass over `inputs` (the full data set, the same on every rank) in shuffled global batches
        of `batch_size` rows; rank r trains on its ``shard`` of each. Returns the mean loss over samples,
        as TrainStep.run_epoch (the last, smaller batch is run, not dropped)."""
        names = self._names["data"]
        if set(inputs) != set(names):
            raise TypeError(f"run_epoch: expected data inputs {sorted(names)}, got {sorted(inputs)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"run_epoch: batch_size must be an int >= 1, got {batch_size!r}")
        counts = {len(inputs[name]) for name in names}
        if len(counts) != 1:
            raise ValueError(f"run_epoch: the data inputs have different row counts {sorted(counts)}")
        rows = counts.pop()
        self._gradient.check_indices(inputs)  # every label of the data, before any batch runs
        batch_size = int(min(batch_size, rows))
        rng = self._rng if seed is None else np.random.default_rng(seed)
        order = rng.permutation(rows) if shuffle else np.arange(rows)
        n_batches = -(-rows // batch_size)
        largest = shard(batch_size, self.size - 1, self.size)  # the last rank's shard is the largest
        gathered = {name: np.empty((largest.stop - largest.start, *inputs[name].shape[1:]), inputs[name].dtype)
                    for name in names}
        losses = np.empty(n_batches)
        for b in range(n_batches):
            start = b * batch_size
            mine = shard(min(batch_size, rows - start), self.rank, self.size)
            index = order[start + mine.start:start + mine.stop]
            batch = {name: np.take(inputs[name], index, axis=0, out=gathered[name][:len(index)]) for name in names}
            losses[b] = self(**batch)
        self.last_epoch_losses = losses
        sizes = np.minimum(batch_size, rows - batch_size * np.arange(n_batches))
        return float(np.dot(losses, sizes) / rows)

    # ---- agreement between ranks ---------------------------------------------------------------

    def _live(self) -> dict:
        return {**{f"param/{k}": v for k, v in self.params.items()}, **{f"state/{k}": v for k, v in self.state.items()},
                **{f"buffer/{k}": v for k, v in self.buffers.items()}}

    def _broadcast_from_root(self) -> None:
        """Every rank takes rank 0's parameters, optimizer state, Buffers and step count."""
        with self._lock:
            for array in self._live().values():
                self.comm.Bcast(array, root=0)
            self.step_count = self.comm.bcast(self.step_count, root=0)

    def digest(self) -> str:
        """SHA-256 of every live array's bytes and the step count: equal on ranks in the same state."""
        h = hashlib.sha256(str(self.step_count).encode())
        with self._lock:
            for name, array in sorted(self._live().items()):
                h.update(name.encode())
                h.update(array.tobytes())
        return h.hexdigest()

    def check_consistent(self) -> None:
        """RuntimeError on every rank unless every rank holds bit-identical parameters, state and Buffers."""
        digests = self.comm.allgather(self.digest())
        differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise RuntimeError(f"ranks {differ} hold different parameters than rank 0 (ranks on different CPUs "
                               f"can round differently; call step.resync() to take rank 0's)")

    def resync(self) -> None:
        """Every rank takes rank 0's parameters, state and Buffers again."""
        self._broadcast_from_root()

    # ---- inference, saving -------------------------------------------------------------------------

    def function(self, nodes):
        """An inference function of `nodes` reading the live parameters and buffers (see TrainStep.function)."""
        if self._compile_function is None:
            raise RuntimeError("this step was loaded without the compiler; compile inference functions with "
                               "compiler.compile")
        return self._compile_function(nodes, {**self.params, **self.buffers})

    def _on_root(self, action):
        """Run `action` on rank 0; its error, if any, is raised on every rank (no rank waits forever)."""
        result, error = None, None
        if self.rank == 0:
            try:
                result = action()
            except Exception as caught:
                error = caught
        failed = self.comm.bcast(None if error is None else (type(error), str(error)), root=0)
        if error is not None:
            raise error
        if failed is not None:
            kind, message = failed
            raise (kind if issubclass(kind, OSError | ValueError) else RuntimeError)(f"on rank 0: {message}")
        return result

    def save(self, path) -> None:
        """Rank 0 writes what TrainStep.save writes (the ranks hold the same values); every rank returns
        once the file is complete."""
        def write():
            with self._lock:
                arrays = {name: array.copy() for name, array in self._live().items()}
                arrays["step_count"] = np.asarray(self.step_count, dtype=np.int64)
            write_atomically(str(path), lambda f: np.savez(f, **arrays))
        self._on_root(write)

    _read_checkpoint = TrainStep._read_checkpoint  # reads self.params, self.state and self.buffers only

    def load(self, path) -> None:
        """Rank 0 reads and checks a checkpoint (TrainStep.load's rules); every rank takes its values."""
        def read():
            values, count = self._read_checkpoint(str(path))
            by_array = {id(live): name for name, live in self._live().items()}
            return {by_array[id(live)]: value for live, value in values}, count
        read_values = self._on_root(read)
        values, count = self.comm.bcast(read_values, root=0)
        live = self._live()
        with self._lock:
            for name, value in values.items():
                np.copyto(live[name], value)
            self.step_count = count

    @property
    def gradient_program(self):
        """The Executable of the gradient program (takes the shard's data inputs; writes the flat buffer)."""
        return self._gradient

    @property
    def update_program(self):
        """The Executable of the update program (no arguments: reads the flat buffer, updates in place)."""
        return self._update

    def kernels(self) -> list:
        """The gradient program's kernels, then the update program's."""
        return self._gradient.kernels() + self._update.kernels()

    def __repr__(self):
        return (f"<symprop DistributedStep rank {self.rank} of {self.size} params={list(self.params)} "
                f"flat={self.layout.nbytes} bytes step={self.step_count}>")
