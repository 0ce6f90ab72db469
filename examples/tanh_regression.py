"""A model file in Python for `symprop inspect`: a module-level `loss` (and optionally
`optimizer`). Try:

    symprop inspect examples/tanh_regression.py --grad W --format math
    symprop inspect examples/tanh_regression.py --format kernels
"""
import compiler as sp
from compiler import optim

X = sp.Input("X", ("batch", 3))
Y = sp.Input("Y", ("batch", 2))
W = sp.Param("W", (3, 2))
b = sp.Param("b", (2,), init="zeros")

loss = sp.sum((sp.tanh(X @ W + b) - Y) ** 2)
optimizer = optim.SGD(lr=0.01, momentum=0.9)
