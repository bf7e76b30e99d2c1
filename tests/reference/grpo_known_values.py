"""Known values for chapter 8 (GRPO), computed with PyTorch (Debian's /usr/bin/python3, torch 1.13), float64.

The formulas follow Hugging Face TRL's GRPOTrainer (trl/trainer/grpo_trainer.py):
  * advantages (_generate_and_score_completions): the group mean is always subtracted; scale_rewards
    "group" divides by the group's std, "batch" by the whole batch's std (torch.std: Bessel-corrected),
    both + 1e-4; "none" does not divide (Dr. GRPO);
  * per-token loss (_compute_loss): coef_1 = exp(logp - old_logp), coef_2 = clamp(coef_1, 1 - eps, 1 + eps),
    per_token_loss = -min(coef_1 * A, coef_2 * A) + beta * per_token_kl,
    per_token_kl = exp(ref - logp) - (ref - logp) - 1;
  * aggregation by loss_type: "grpo" = ((l * m).sum(-1) / m.sum(-1).clamp(min=1)).mean();
    "bnpo" = (l * m).sum() / m.sum().clamp(min=1) (TRL's "dapo" divides by the token count of the
    global batch, the same number on one device with one micro-batch); "dr_grpo" = (l * m).sum() /
    (l.size(0) * max_completion_length);
  * clip fraction: ((coef_1 < 1 - eps) & (A < 0)) | ((coef_1 > 1 + eps) & (A > 0)), masked mean.

Run:  /usr/bin/python3 tests/reference/grpo_known_values.py   (prints the numbers pasted into GrpoTests.cs)
"""
import torch

torch.set_printoptions(precision=17)
d = torch.float64


def advantages(r, G, scale):
    g = r.view(-1, G)
    centred = (g - g.mean(dim=1, keepdim=True)).reshape(-1)
    if scale == "group":
        std = g.std(dim=1).repeat_interleave(G)
    elif scale == "batch":
        std = r.std().expand_as(r)
    else:
        return centred
    return centred / (std + 1e-4)


def show(name, t):
    print(name, "[" + ", ".join(repr(float(x)) for x in t.reshape(-1)) + "]")


# --- advantages
show("group [1,0,0,1]:", advantages(torch.tensor([1., 0, 0, 1], dtype=d), 4, "group"))
show("group [0,1,2,3]:", advantages(torch.tensor([0., 1, 2, 3], dtype=d), 4, "group"))
show("none  [1,0,0,0]:", advantages(torch.tensor([1., 0, 0, 0], dtype=d), 4, "none"))
two = torch.tensor([1., 0, 0, 1, 0, 1, 2, 3], dtype=d)
show("batch [1,0,0,1 | 0,1,2,3]:", advantages(two, 4, "batch"))
show("group [1.1,0.1,0.1,0 | 1,1,1,1]:", advantages(torch.tensor([1.1, 0.1, 0.1, 0, 1, 1, 1, 1], dtype=d), 4, "group"))

# --- k3
lp, rf = torch.tensor(-1., dtype=d), torch.tensor(-2., dtype=d)
print("k3(logp -1, ref -2):", repr(float(torch.exp(rf - lp) - (rf - lp) - 1)))

# --- the hand-made ragged batch: N = 4 completions of one group, M = 5, lengths 5, 2, 4, 1
logp0 = torch.tensor([[-0.5, -1.2, -0.3, -2.0, -0.7],
                      [-1.0, -0.4, -3.0, -0.2, -0.9],
                      [-0.6, -0.8, -1.5, -0.1, -2.2],
                      [-0.3, -1.1, -0.5, -0.6, -1.3]], dtype=d)
delta = torch.tensor([[0.1, -0.3, 0.25, 0.0, -0.05],
                      [-0.4, 0.15, 0.0, 0.3, -0.2],
                      [0.05, 0.35, -0.25, 0.1, 0.0],
                      [-0.3, 0.2, 0.1, -0.15, 0.05]], dtype=d)
old = logp0 + delta
ref = torch.tensor([[-0.9, -1.0, -0.8, -1.5, -0.7],
                    [-0.6, -0.9, -2.0, -0.5, -1.4],
                    [-1.1, -0.5, -1.2, -0.4, -1.8],
                    [-0.2, -1.6, -0.9, -0.3, -1.0]], dtype=d)
mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]], dtype=d)
A = advantages(torch.tensor([1., 0, 0, 1], dtype=d), 4, "group")
eps, beta, max_len = 0.2, 0.04, 5


def per_token(logp):
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps, 1 + eps)
    l = -torch.min(coef_1 * A.unsqueeze(1), coef_2 * A.unsqueeze(1))
    kl = torch.exp(ref - logp) - (ref - logp) - 1
    return l + beta * kl


for loss_type in ["grpo", "bnpo", "dr_grpo"]:
    logp = logp0.clone().requires_grad_(True)
    l = per_token(logp)
    if loss_type == "grpo":
        loss = ((l * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (l * mask).sum() / mask.sum().clamp(min=1.0)
    else:
        loss = (l * mask).sum() / (l.size(0) * max_len)
    loss.backward()
    print(loss_type, "loss:", repr(float(loss)))
    show(loss_type + " grad:", logp.grad)

coef_1 = torch.exp(logp0 - old)
clipped = ((coef_1 < 1 - eps) & (A.unsqueeze(1) < 0)) | ((coef_1 > 1 + eps) & (A.unsqueeze(1) > 0))
print("clip fraction:", repr(float((clipped.to(d) * mask).sum() / mask.sum())))
