"""Known values for chapter 2 (02-actor-critic-gae), computed with PyTorch in float64.

Prints the numbers pasted into tests/Chapters.Tests/ActorCriticTests.cs. GAE here is written the way
TRL's PPO trainer and CleanRL's ppo.py write it -- a loop over time, vectorised over the batch -- an
implementation independent of the chapter's plain loop and discount-matrix versions.

    /usr/bin/python3 tests/reference/actor_critic_gae.py      # torch 1.13 (Debian's python3-torch)
"""
import torch

torch.set_default_dtype(torch.float64)


def gae(rewards, values, mask, gamma, lam, last_values=None):
    """TRL/CleanRL-style GAE over (N, T); V = 0 after each row's last real token, last_values after column T-1."""
    N, T = rewards.shape
    last = torch.zeros(N) if last_values is None else last_values
    lastgaelam = torch.zeros(N)
    out = []
    for t in reversed(range(T)):
        nextvalues = values[:, t + 1] * mask[:, t + 1] if t < T - 1 else last
        delta = (rewards[:, t] + gamma * nextvalues - values[:, t]) * mask[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        out.append(lastgaelam)
    adv = torch.stack(out[::-1], dim=1)
    return adv, (adv + values) * mask


def show(name, t):
    print(f"{name} = {[round(float(x), 15) for x in t.flatten()]}")


# 1. A batch with one cut-off row (bootstrapped from 0.25) and one that ends at t = 1 (its last value is ignored).
rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.7, 0.0, 0.0]])
values = torch.tensor([[0.5, 0.2, -0.1, 0.4], [0.3, 0.6, 0.0, 0.0]])
mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
adv, ret = gae(rewards, values, mask, 0.9, 0.8, torch.tensor([0.25, 9.0]))
show("gae_advantages", adv)
show("gae_returns", ret)

# 2. rlax's truncated GAE test, row 1 (gamma 0.99, bootstrap -1), exact values for lambda 1, 0.7, 0.4.
r1 = torch.tensor([[0.0, 0.0, 1.0, 0.0, -0.5]])
v1 = torch.tensor([[1.0, 4.0, -3.0, -2.0, -1.0]])
for lam in (1.0, 0.7, 0.4):
    a, _ = gae(r1, v1, torch.ones(1, 5), 0.99, lam, torch.tensor([-1.0]))
    show(f"rlax_row1_lambda{lam}", a)

# 3. Advantage normalisation over the real tokens: (A - mean) / (std + 1e-8), std unbiased as torch.std.
A = torch.tensor([[1.0, -2.0, 0.5], [3.0, 9.0, 9.0]])
m = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
real = A[m.bool()]
show("normalized", (A - real.mean()) / (real.std() + 1e-8) * m)

# 4. Policy loss -sum(A logp m)/sum(m) and its gradient; value loss sum((V - G)^2 m)/sum(m) and its gradient.
logp = torch.tensor([[-0.1, -2.3, -0.7], [-1.2, -0.4, -3.0]], requires_grad=True)
adv = torch.tensor([[0.5, -1.0, 2.0], [-0.3, 7.0, 7.0]])
loss = -(adv * logp * m).sum() / m.sum()
loss.backward()
print(f"policy_loss = {float(loss)!r}")
show("policy_loss_grad", logp.grad)
V = torch.tensor([[0.2, 0.4, 0.9], [0.1, 5.0, 5.0]], requires_grad=True)
G = torch.tensor([[1.0, 0.0, 1.0], [0.5, 0.0, 0.0]])
vloss = ((V - G) ** 2 * m).sum() / m.sum()
vloss.backward()
print(f"value_loss = {float(vloss)!r}")
show("value_loss_grad", V.grad)

# 5. Explained variance 1 - Var[G - V] / Var[G] over the real tokens (population variances, as numpy in CleanRL).
y, yhat = G[m.bool()], V.detach()[m.bool()]
print(f"explained_variance = {float(1 - (y - yhat).var(unbiased=False) / y.var(unbiased=False))!r}")
