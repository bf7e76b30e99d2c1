"""Known values for chapter 8's switches beyond GRPO — tests/Chapters.Tests/GrpoFamilyTests.cs pastes what this prints.

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/grpo_family_known_values.py

Written as TRL's GRPOTrainer / RLOOTrainer write them (float64; N = 4 completions in 2 groups of G = 2... here one
batch of 2 prompts x G = 3 for the advantages, and 3 completions of M = 4 tokens for the losses):

    rloo advantages (RLOOTrainer):  baseline = (r.sum(1) - r) / (G - 1);  A = r - baseline
    reinforce++-baseline (Hu 2025): c = r - r.mean(1);  A = c / (c.std() + 1e-4)       (std over the whole batch)
    decoupled clip (DAPO):           coef_2 = clamp(coef_1, 1 - eps_low, 1 + eps_high);
                                     loss = -min(coef_1 * A, coef_2 * A)
    gspo (importance_sampling_level="sequence"):
                                     log_w = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1), unsqueeze(-1)
                                     coef_1 = exp(log_w), then as above
    cispo (loss_type="cispo"):       clamped = clamp(coef_1, max=1 + eps_high).detach();
                                     per_token_loss = -clamped * A * per_token_logps
    kl terms:  k1 = logp - ref;  k2 = 0.5 (ref - logp)^2;  k3 = exp(ref - logp) - (ref - logp) - 1
Losses are aggregated as TRL's "dapo" (sum over mask / mask.sum()) unless said otherwise.
"""
import torch

torch.set_default_dtype(torch.float64)


def show(name, t):
    print(f"{name} = [{', '.join(repr(float(x)) for x in t.reshape(-1))}]")


# Advantages: two prompts, G = 3.
r = torch.tensor([[1.0, 0.0, 0.1], [1.1, 1.1, 0.0]])
G = 3
show("rloo_advantages", r - (r.sum(1, keepdim=True) - r) / (G - 1))
c = r - r.mean(1, keepdim=True)
show("reinforcepp_advantages", c / (c.std() + 1e-4))

# Losses: three completions of up to four tokens.
logp0 = torch.tensor([[-0.5, -1.2, -0.3, -2.0], [-0.9, -0.1, -0.7, -0.4], [-1.5, -0.6, -0.2, -0.8]])
old = torch.tensor([[-0.7, -1.0, -0.3, -1.0], [-0.6, -0.3, -0.9, -0.2], [-1.1, -0.6, -0.5, -0.9]])
ref = torch.tensor([[-0.6, -1.1, -0.4, -1.5], [-0.8, -0.2, -0.8, -0.3], [-1.3, -0.7, -0.3, -0.7]])
mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
A = torch.tensor([[0.8], [-1.1], [0.5]])


def dapo(per_token):
    return (per_token * mask).sum() / mask.sum()


def run(name, per_token_fn):
    logp = logp0.clone().requires_grad_()
    loss = dapo(per_token_fn(logp))
    loss.backward()
    print(f"{name}_loss = {float(loss)!r}")
    show(f"{name}_grad", logp.grad)


def clipped(log_ratio, eps_low, eps_high):
    coef_1 = torch.exp(log_ratio)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    return -torch.min(coef_1 * A, coef_2 * A)


run("clip_sym", lambda lp: clipped(lp - old, 0.2, 0.2))
run("clip_higher", lambda lp: clipped(lp - old, 0.2, 0.28))


def seq(lp):
    log_w = ((lp - old) * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return clipped(log_w.unsqueeze(-1), 3e-4, 4e-4).expand_as(lp)


run("gspo", seq)
with torch.no_grad():
    show("gspo_sequence_ratio", torch.exp(((logp0 - old) * mask).sum(-1) / mask.sum(-1)))


def cispo(lp):
    w = torch.clamp(torch.exp(lp - old), max=1 + 0.2).detach()
    return -w * A * lp


run("cispo", cispo)
run("kl_k1", lambda lp: lp - ref)
run("kl_k2", lambda lp: 0.5 * (ref - lp) ** 2)
run("kl_k3", lambda lp: torch.exp(ref - lp) - (ref - lp) - 1)
