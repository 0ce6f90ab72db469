"""The char transformer's training step (examples/char_transformer.py) beside PyTorch eager: median microseconds.

    python benchmarks/bench_char_transformer.py [--rounds 9] [--threads 1] [--markdown] [--cost]

The model: token embedding (103 x 64) + learned positions (64 x 64), two pre-norm causal transformer
blocks (4 heads, d = 64, GELU MLP of 256), a final LayerNorm and a dense head to the 103 characters;
cross-entropy at each of the 64 positions of a batch of 32 windows; Adam(lr=3e-3); float32. PyTorch
runs the same model (torch.nn.Embedding, torch.nn.TransformerEncoderLayer(norm_first=True, "gelu",
dropout=0) with a causal mask, torch.nn.LayerNorm, torch.nn.Linear, torch.optim.Adam) from the same
weights on the same batch; the losses of the first two steps are printed for both. symprop is timed
per step call and per step inside one ``run_epoch`` call of 8 batches. `--cost` prints the kernels
of symprop's step that take the most time, by kind (``step.cost()``).
"""
import argparse
import sys

from common import describe_unset, single_threaded_environment

if __name__ == "__main__":
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
    _UNSET = single_threaded_environment(threads)

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import compiler as sp  # noqa: E402
from common import compare, machine_summary, optional_module, print_table  # noqa: E402
from runtime.datasets import load_python_docs  # noqa: E402

BATCH, LR, EPOCH_BATCHES = 32, 3e-3, 8


def example():
    path = Path(__file__).resolve().parent.parent / "examples" / "char_transformer.py"
    spec = importlib.util.spec_from_file_location("char_transformer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def symprop_step(ct, vocab):
    ids, logits, model = ct.build(vocab)
    targets = sp.Input("targets", ("batch", ct.CONTEXT), "int64")
    step = sp.compile_step(sp.cross_entropy(logits, targets), sp.optim.Adam(lr=LR), seed=0)
    return step, model


def torch_step(torch, ct, vocab, weights: dict):
    """The same model in torch.nn, loaded with symprop's initial weights (the dense head transposed)."""
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = torch.nn.Embedding(vocab, ct.DIM)
            self.positions = torch.nn.Parameter(torch.zeros(ct.CONTEXT, ct.DIM))
            self.blocks = torch.nn.ModuleList(
                torch.nn.TransformerEncoderLayer(ct.DIM, ct.HEADS, 4 * ct.DIM, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=True) for _ in range(ct.LAYERS))
            self.norm = torch.nn.LayerNorm(ct.DIM)
            self.head = torch.nn.Linear(ct.DIM, vocab)
            self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(ct.CONTEXT))

        def forward(self, x):
            h = self.tokens(x) + self.positions
            for block in self.blocks:
                h = block(h, src_mask=self.mask, is_causal=True)
            return self.head(self.norm(h))

    model = Model()
    with torch.no_grad():
        model.tokens.weight.copy_(torch.tensor(weights["token_embedding.weight"]))
        model.positions.copy_(torch.tensor(weights["position_embedding.weight"]))
        for i, block in enumerate(model.blocks):
            prefix = "transformer_block." if i == 0 else f"transformer_block_{i}."
            for name, value in block.named_parameters():
                value.copy_(torch.tensor(weights[prefix + name]))
        model.norm.weight.copy_(torch.tensor(weights["layer_norm.weight"]))
        model.norm.bias.copy_(torch.tensor(weights["layer_norm.bias"]))
        model.head.weight.copy_(torch.tensor(weights["head.weight"].T))
        model.head.bias.copy_(torch.tensor(weights["head.bias"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def step(x, y):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def print_cost(step, x, y, top: int = 12) -> None:
    report = step.cost(ids=x, targets=y)
    total = sum(row.seconds for row in report.rows)
    by_kind = {}
    for row in report.rows:
        by_kind[row.kind] = by_kind.get(row.kind, 0.0) + row.seconds
    print(f"\nsymprop step, {len(report.rows)} kernels, {total * 1e6:,.0f} us summed when run one at a time:")
    for kind, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"  {kind:<12} {seconds * 1e6:10,.0f} us  {seconds / total:5.1%}")
    print(f"the {top} slowest kernels:")
    bodies = step.kernels()
    for row in sorted(report.rows, key=lambda row: -row.seconds)[:top]:
        body = bodies[row.index].get("body", "") if isinstance(bodies[row.index], dict) else ""
        print(f"  #{row.index:<3} {row.kind:<11} {row.phase:<8} {row.seconds * 1e6:8,.0f} us "
              f"{row.flops / 1e6:8.2f} MFLOP  {body[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="threads for every library (default 1)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--cost", action="store_true", help="symprop's slowest kernels")
    args = parser.parse_args()
    print(machine_summary())
    print(describe_unset(_UNSET))
    ct, corpus = example(), load_python_docs()
    step, model = symprop_step(ct, corpus.vocab_size)
    weights = {name: value.copy() for name, value in step.params.items()}
    rng = np.random.default_rng(0)
    x_all, y_all = corpus.random_windows("train", BATCH * EPOCH_BATCHES, ct.CONTEXT, rng)
    x, y = x_all[:BATCH], y_all[:BATCH]
    calls = {"symprop": lambda: step(ids=x, targets=y),
             "symprop epoch": lambda: step.run_epoch({"ids": x_all, "targets": y_all}, BATCH, shuffle=False)}
    losses = {"symprop": [step(ids=x, targets=y) for _ in range(2)]}
    step.params.update(weights)
    torch = optional_module("torch")
    if torch is not None:
        torch.set_num_threads(args.threads)
        torch_call = torch_step(torch, ct, corpus.vocab_size, weights)
        xt, yt = torch.tensor(x), torch.tensor(y)
        losses["torch"] = [torch_call(xt, yt) for _ in range(2)]
        calls["torch"] = lambda: torch_call(xt, yt)
    for name, values in losses.items():
        print(f"{name}: losses of the first two steps {values[0]:.6f}, {values[1]:.6f}")
    times = compare(calls, rounds=args.rounds, sample_seconds=0.2)
    times["symprop epoch"] /= EPOCH_BATCHES
    print_table(f"char transformer step: batch {BATCH} x {ct.CONTEXT} characters, {args.threads} thread(s)",
                [("char transformer", times)], ["symprop", "symprop epoch", "torch"], reference="torch",
                markdown=args.markdown)
    if args.cost:
        print_cost(step, x, y)


if __name__ == "__main__":
    main()
