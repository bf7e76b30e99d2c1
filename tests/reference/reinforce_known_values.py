# Known values for tests/Chapters.Tests/ReinforceTests.cs (chapter 1, REINFORCE), computed with PyTorch.
#   /usr/bin/python3 tests/reference/reinforce_known_values.py
# The batch is hand-made: logits from a formula both languages can write, fixed actions, a completion mask
# with padding after <eos>, 0/1 rewards and a baseline. Prints the loss, its gradient with respect to the
# logits, the per-sequence log-probs, and the k3 KL per sequence against a second set of logits.
import math
import torch

torch.set_printoptions(precision=17)
N, M, V = 3, 4, 5
logits = torch.tensor([[[2.0 * math.sin(1 + 7 * i + 3 * t + v) for v in range(V)] for t in range(M)] for i in range(N)],
                      dtype=torch.float64, requires_grad=True)
ref_logits = torch.tensor([[[1.5 * math.cos(2 + 5 * i + 2 * t + v) for v in range(V)] for t in range(M)] for i in range(N)],
                          dtype=torch.float64)
actions = torch.tensor([[1, 4, 2, 0], [3, 3, 0, 2], [2, 0, 0, 0]])
mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float64)
rewards = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
baseline = 0.4

token_logp = logits.log_softmax(-1).gather(2, actions.unsqueeze(-1)).squeeze(-1)   # (N, M)
logp = (token_logp * mask).sum(1)                                                   # (N)
advantages = rewards - baseline
loss = -(logp * advantages).mean()
loss.backward()
print("logp", [float(x) for x in logp])
print("loss", float(loss))
print("grad", [float(x) for x in logits.grad.flatten()])

ref_token_logp = ref_logits.log_softmax(-1).gather(2, actions.unsqueeze(-1)).squeeze(-1)
r = ref_token_logp - token_logp.detach()
k3 = ((r.exp() - 1) - r) * mask
print("kl", [float(x) for x in k3.sum(1)])

# Gradient variance of per-sample estimates c_i * s_i: tr Cov with the unbiased (n - 1) denominator.
s = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 1.0, 1.0], [-1.0, 0.5, 2.0]], dtype=torch.float64)
c = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
for b in [0.0, 0.5]:
    g = (c - b).unsqueeze(1) * s
    print("var b", b, float(g.var(0, unbiased=True).sum()))
