"""Known values for chapter 6 (06-rlhf), computed with PyTorch (float64).

    /usr/bin/python3 tests/reference/rlhf_known_values.py

Each block mirrors a pure function of 06-rlhf/Program.cs (RlhfMath) and prints the numbers that
tests/Chapters.Tests/RlhfTests.cs pins.
"""
import numpy as np
import torch
import torch.nn.functional as F

torch.set_printoptions(precision=17)
d = torch.float64

# Bradley-Terry loss (the vector): -mean log sigmoid(r_c - r_r).
rc = torch.tensor([1.0, 0.5, -0.2], dtype=d)
rr = torch.tensor([0.0, 0.7, -1.2], dtype=d)
print("bradley_terry", repr((-F.logsigmoid(rc - rr).mean()).item()))

# Clipped surrogate (the vector): max(-A rho, -A clip(rho, 1-eps, 1+eps)).
lr = torch.tensor([0.3, -0.3, 0.0, 0.1], dtype=d)
adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=d)
rho = lr.exp()
per = torch.max(-adv * rho, -adv * rho.clamp(0.8, 1.2))
print("clipped_surrogate", [repr(v) for v in per.tolist()], "mean", repr(per.mean().item()))
# its gradient w.r.t. the log-ratios, through the mean
lrg = lr.clone().requires_grad_()
r2 = lrg.exp()
torch.max(-adv * r2, -adv * r2.clamp(0.8, 1.2)).mean().backward()
print("clipped_surrogate_grad", [repr(v) for v in lrg.grad.tolist()])

# Clipped value loss (OpenAI baselines PPO2 / TRL): 0.5 mean max((V-G)^2, (Vold + clip(V-Vold, -e, e) - G)^2).
v = torch.tensor([1.0, 0.5, -0.2, 2.0], dtype=d)
vo = torch.tensor([0.8, 0.9, 0.0, 1.0], dtype=d)
g = torch.tensor([1.5, 0.0, 0.3, 0.5], dtype=d)
vc = vo + (v - vo).clamp(-0.2, 0.2)
print("value_loss_clipped", repr((0.5 * torch.max((v - g) ** 2, (vc - g) ** 2).mean()).item()))
print("value_loss_unclipped", repr((0.5 * ((v - g) ** 2).mean()).item()))

# Adaptive KL controller, lm-human-preferences (openai/lm-human-preferences, train_policy.py, AdaptiveKLController).
class AdaptiveKLController:
    def __init__(self, init_kl_coef, target, horizon):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon
    def update(self, current, n_steps):
        proportional_error = np.clip(current / self.target - 1, -0.2, 0.2)
        mult = 1 + proportional_error * n_steps / self.horizon
        self.value *= mult
for kl in [2.0, 0.5, 1.1, 1.0]:
    c = AdaptiveKLController(0.1, 1.0, 10000)
    c.update(kl, 64)
    print("adaptive_kl", kl, repr(c.value))
c = AdaptiveKLController(0.2, 6.0, 10000)
for kl in [8.0, 7.0, 3.0]:
    c.update(kl, 512)
print("adaptive_kl_sequence", repr(c.value))

# Per-token KL-penalised rewards: r_t = -beta kl_t + 1[t = len-1] (score - penalty 1[no eos]), 0 after the end.
beta, penalty = 0.1, 1.0
kl = torch.tensor([[0.5, -0.2, 0.1, 0.7, 0.3],
                   [0.3, 0.0, -0.4, 0.2, 1.0],
                   [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=d)
lengths = torch.tensor([3, 5, 5])
has_eos = torch.tensor([True, False, True])
scores = torch.tensor([0.8, 0.5, -0.3], dtype=d)
mask = (torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)).to(d)
last = (torch.arange(5).unsqueeze(0) == (lengths - 1).unsqueeze(1)).to(d)
r = (-beta * kl + last * (scores - penalty * (~has_eos).to(d)).unsqueeze(1)) * mask
print("token_rewards", [[repr(x) for x in row] for row in r.tolist()])

# Whitening over the real tokens (TRL masked_whiten, unbiased variance).
a = torch.tensor([[1.0, -2.0, 0.5], [3.0, 9.0, 9.0]], dtype=d)
m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=d)
sel = a[m.bool()]
w = (a - sel.mean()) * torch.rsqrt(sel.var(unbiased=True) + 1e-8) * m
print("whiten", [[repr(x) for x in row] for row in w.tolist()])

# GAE on the RLHF rewards of the hand-made case, gamma 1, lambda 0.95, values below.
vals = torch.tensor([[0.2, 0.1, -0.1, 5.0, 5.0],
                     [0.0, 0.3, 0.2, -0.2, 0.4],
                     [0.1, 0.1, 0.1, 0.1, 0.1]], dtype=d)
adv = torch.zeros_like(r); nxt_v = torch.zeros(3, dtype=d); nxt_a = torch.zeros(3, dtype=d)
vm = vals * mask
for t in reversed(range(5)):
    delta = r[:, t] + 1.0 * nxt_v - vm[:, t]
    nxt_a = (delta + 1.0 * 0.95 * nxt_a) * mask[:, t]
    adv[:, t] = nxt_a
    nxt_v = vm[:, t]
print("gae_adv", [[repr(x) for x in row] for row in adv.tolist()])
print("gae_ret", [[repr(x) for x in row] for row in ((adv + vm) * mask).tolist()])

# Exact KL of next-token distributions, KL(p || q) = sum p (log p - log q), per position.
lg = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]], dtype=d)
rl = torch.tensor([[0.5, 1.0, 1.0], [1.0, 0.0, -1.0]], dtype=d)
lp, lq = lg.log_softmax(-1), rl.log_softmax(-1)
print("state_kl", [repr(x) for x in F.kl_div(lq, lp, reduction="none", log_target=True).sum(-1).tolist()])
