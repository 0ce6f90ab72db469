"""An MLP's gradients in every form symprop can show: text, mathematics, LaTeX,
the program after each pass, Graphviz DOT, fused kernels, LLVM IR, assembly and cost.

    python examples/inspect_gradients.py
"""
import numpy as np

import compiler as sp
from compiler import optim

x = sp.Input("x", ("batch", 4))
y = sp.Input("y", ("batch",), "int64")
W1 = sp.Param("W1", (4, 8))
b1 = sp.Param("b1", (8,), init="zeros")
W2 = sp.Param("W2", (8, 3))
logits = sp.sigmoid(x @ W1 + b1) @ W2
loss = sp.cross_entropy(logits, y)
gW1 = sp.grad(loss, W1)


def section(title):
    print(f"\n{'=' * 12} {title} {'=' * (60 - len(title))}")


section("text: the gradient graph, one line per node")
print(sp.show(gW1))

section("mathematics: d loss / d W1 as a matrix expression")
print(sp.pretty(gW1))

section("LaTeX of the hidden layer's gradient for a squared error")
hidden = sp.sigmoid(x @ W1 + b1)
print(sp.latex(sp.grad(sp.sum(hidden ** 2), W1)))

section("the program after each pass (node counts), ending with the fused kernels")
print(sp.show(loss, passes=True, wrt=[W1, b1, W2]).split("== fused")[1])

section("Graphviz DOT (render with `dot -Tsvg`), first lines")
print("\n".join(sp.to_dot([loss, gW1], forward=[loss]).splitlines()[:8]))

step = sp.compile_step(loss, optim.Adam(lr=1e-2))
rng = np.random.default_rng(0)
batch = {"x": rng.standard_normal((32, 4)).astype("float32"), "y": rng.integers(0, 3, 32)}

section("fused kernels of the compiled training step")
for k, kernel in enumerate(step.kernels()):
    print(f"k{k:<2} {kernel['kind']:<11} {kernel['phase']:<8} {kernel['body'][:90]}")

section("LLVM IR (first lines) and assembly (vector instructions)")
print("\n".join(step.llvm_ir().splitlines()[:6]))
vector = [line for line in step.asm().splitlines() if "zmm" in line or "ymm" in line]
print(f"{len(vector)} assembly lines use vector registers, e.g.{vector[0] if vector else ' (none)'}")

section("cost: FLOPs, bytes and measured time per kernel")
print(step.cost(**batch))
