"""Reference values for OptimTests.cs: 3 optimizer steps in PyTorch (float32, single-tensor path).

Run with Debian's /usr/bin/python3 (torch 1.13):  /usr/bin/python3 tests/reference/optim_reference.py
Two parameters get fixed gradients at each step (no model); the second parameter has no gradient at
step 2, which checks that it is skipped and that the step count is kept per parameter.
The printed values are pasted into tests/MinTorch.Tests/OptimTests.cs.
"""
import torch

P0 = [0.5, -1.2, 0.3, 2.0, -0.7, 0.05]          # shape [2, 3]
P1 = [1.5, -0.25, 0.8, -2.2]                     # shape [4]
GRADS = [
    ([0.1, -0.4, 0.25, 1.5, -0.9, 0.02], [-0.3, 0.6, 0.0, 2.5]),
    ([0.05, 0.3, -0.2, 0.1, -0.15, 0.4], None),
    ([-0.02, 0.01, 0.6, -0.3, 0.05, -0.25], [0.01, 0.3, -0.4, 0.1]),
]

CONFIGS = [
    ("sgd_nesterov", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, foreach=False)),
    ("sgd_dampening", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, foreach=False)),
    ("sgd_plain_maximize", lambda ps: torch.optim.SGD(ps, lr=0.05, maximize=True, foreach=False)),
    ("adam_wd", lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1, foreach=False)),
    ("adam_amsgrad", lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), amsgrad=True, foreach=False)),
    ("adam_maximize", lambda ps: torch.optim.Adam(ps, lr=0.02, eps=1e-6, maximize=True, foreach=False)),
    ("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.01, foreach=False)),
    ("adamw_amsgrad", lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1, amsgrad=True, foreach=False)),
]


def fmt(t):
    return ", ".join("%.9ef" % v for v in t.detach().flatten().tolist())


for name, make in CONFIGS:
    p0 = torch.tensor(P0, dtype=torch.float32).reshape(2, 3).requires_grad_()
    p1 = torch.tensor(P1, dtype=torch.float32).requires_grad_()
    opt = make([p0, p1])
    for g0, g1 in GRADS:
        p0.grad = torch.tensor(g0, dtype=torch.float32).reshape(2, 3)
        p1.grad = None if g1 is None else torch.tensor(g1, dtype=torch.float32)
        opt.step()
    print(f'["{name}"] = (new float[] {{ {fmt(p0)} }}, new float[] {{ {fmt(p1)} }}),')
