# Known values for tests/Chapters.Tests/ReinforceTests.cs (chapter 1, --baseline rloo), computed with PyTorch.
#   /usr/bin/python3 tests/reference/rloo_known_values.py
# A hand-made batch of 3 prompts x k = 3 completions, laid out prompt-major as the chapter samples it (rows
# g*k ... g*k + k - 1 share a prompt); the third prompt's rewards are all equal. The leave-one-out baseline is
# computed the way TRL's RLOOTrainer writes it, on rewards laid out generation-major, (k, prompts):
#   rlhf_reward = rlhf_reward.reshape(rloo_k, -1)
#   baseline = (rlhf_reward.sum(0) - rlhf_reward) / (rloo_k - 1)
# so the prompt-major rewards are transposed into that layout first and the results transposed back. Prints
# the baselines, the advantages, the REINFORCE loss -(logp * A).mean() on token log-probs with a completion
# mask, and its gradient with respect to those token log-probs; then, on hand-made score vectors, the variance
# of the update when samples come in groups of k (UpdateVariance).
import torch

torch.set_printoptions(precision=17)
P, K, M = 3, 3, 2                                        # prompts, completions per prompt, tokens per completion
N = P * K
rewards = torch.tensor([1.0, 0.0, 1.0,                   # prompt 0
                        0.1, 0.0, 1.1,                   # prompt 1 (a format bonus of 0.1 on two of them)
                        1.0, 1.0, 1.0],                  # prompt 2: all right, so every advantage is 0
                       dtype=torch.float64)

# TRL's layout: (k, prompts), column j holding prompt j's k rewards.
rlhf_reward = rewards.reshape(P, K).T.reshape(-1)        # flat, generation-major, as TRL receives it
rlhf_reward = rlhf_reward.reshape(K, -1)
baseline_trl = (rlhf_reward.sum(0) - rlhf_reward) / (K - 1)
advantages_trl = (rlhf_reward - baseline_trl).flatten()
baseline = baseline_trl.T.reshape(-1)                    # back to the chapter's prompt-major layout
advantages = (rlhf_reward - baseline_trl).T.reshape(-1)
assert torch.equal(advantages, rewards - baseline)

# Token log-probs from a formula, and a mask that ends rows 1, 4 and 8 after their first token.
token_logp = torch.tensor([[-0.3 - 0.1 * i - 0.7 * t for t in range(M)] for i in range(N)],
                          dtype=torch.float64, requires_grad=True)
mask = torch.ones(N, M, dtype=torch.float64)
for i in (1, 4, 8):
    mask[i, 1] = 0.0
logp = (token_logp * mask).sum(1)                        # (N): log pi(tau_i)
loss = -(logp * advantages).mean()
loss.backward()
print("baseline", [float(x) for x in baseline])
print("advantages", [float(x) for x in advantages])
print("loss", float(loss))
print("grad", [float(x) for x in token_logp.grad.flatten()])

# N * Var[g_hat] when samples come in groups of k of the same prompt: k * tr Cov of the group means
# G_g = (1/k) sum_{i in g} c_i s_i, with the unbiased (groups - 1) denominator. With k = 1 it is the per-sample
# variance of reinforce_known_values.py.
s = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 1.0, 1.0],
                  [-1.0, 0.5, 2.0], [0.5, 0.5, -1.5], [1.5, -1.0, 0.0]], dtype=torch.float64)
r = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
for k in [1, 2, 3]:
    rr = r.reshape(-1, k)
    loo = r if k == 1 else (rr - (rr.sum(1, keepdim=True) - rr) / (k - 1)).reshape(-1)
    for name, c in [("none", r), ("b=0.5", r - 0.5), ("rloo", loo)]:
        if k == 1 and name == "rloo":
            continue
        G = (c.unsqueeze(1) * s).reshape(-1, k, s.shape[1]).mean(1)
        print("update var k", k, name, float(k * G.var(0, unbiased=True).sum()))
