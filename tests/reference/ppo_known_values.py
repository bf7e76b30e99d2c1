"""Known values for chapter 4 (04-ppo), computed with PyTorch in float64.

Prints the numbers pasted into tests/Chapters.Tests/PpoTests.cs. Every loss is written the way CleanRL's
ppo.py writes it (https://github.com/vwxyzjn/cleanrl/blob/master/cleanrl/ppo.py), on token batches with a
mask (a masked mean replaces CleanRL's .mean()):

    /usr/bin/python3 tests/reference/ppo_known_values.py      # torch 1.13 (Debian's python3-torch)
"""
import torch

torch.set_default_dtype(torch.float64)


def mmean(x, m):
    return (x * m).sum() / m.sum()


def show(name, t):
    t = torch.as_tensor(t)
    print(f"{name} = {[float(x) for x in t.flatten()]}")


# ---- case 1: the clipped surrogate on the hand-made batch (and its gradient wrt the log-ratio)
logratio = torch.tensor([0.3, -0.3, 0.0, 0.1], requires_grad=True)
adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
clip_coef = 0.2
ratio = logratio.exp()
pg_loss1 = -adv * ratio
pg_loss2 = -adv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
per_sample = torch.max(pg_loss1, pg_loss2)
pg_loss = per_sample.mean()
pg_loss.backward()
show("case1 per_sample", per_sample)
print("case1 pg_loss =", float(pg_loss))
with torch.no_grad():
    print("case1 k1 (old_approx_kl) =", float((-logratio).mean()))
    print("case1 k3 (approx_kl) =", float(((ratio - 1) - logratio).mean()))
    print("case1 clipfrac =", float(((ratio - 1.0).abs() > clip_coef).double().mean()))
show("case1 grad logratio", logratio.grad)

# ---- case 2: the same on a masked (2, 3) batch, with per-minibatch advantage normalisation (norm_adv)
logratio = torch.tensor([[0.25, -0.05, 0.4], [-0.35, 0.1, 9.0]], requires_grad=True)
adv = torch.tensor([[0.5, -1.0, 2.0], [-0.3, 1.5, 7.0]])
mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
n = mask.sum()
mean = (adv * mask).sum() / n
std = (((adv - mean) ** 2 * mask).sum() / (n - 1)).sqrt()
nadv = (adv - mean) / (std + 1e-8) * mask
ratio = logratio.exp()
per = torch.max(-nadv * ratio, -nadv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef))
loss = mmean(per, mask)
loss.backward()
show("case2 normalised adv", nadv)
print("case2 pg_loss =", float(loss))
show("case2 grad logratio", logratio.grad)
with torch.no_grad():
    print("case2 k1 =", float(mmean(-logratio, mask)), " k3 =", float(mmean((ratio - 1) - logratio, mask)),
          " clipfrac =", float(mmean(((ratio - 1).abs() > clip_coef).double(), mask)))

# ---- case 3: value loss, CleanRL's clip_vloss branch and the plain one (0.5 * max(...).mean())
newvalue = torch.tensor([[0.5, 0.1, 0.9], [0.3, -0.4, 5.0]], requires_grad=True)
b_values = torch.tensor([[0.2, 0.2, 0.6], [0.3, 0.0, 0.0]])
b_returns = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.5, 0.0]])
v_loss_unclipped = (newvalue - b_returns) ** 2
v_clipped = b_values + torch.clamp(newvalue - b_values, -clip_coef, clip_coef)
v_loss_clipped = (v_clipped - b_returns) ** 2
v_loss = 0.5 * mmean(torch.max(v_loss_unclipped, v_loss_clipped), mask)
v_loss.backward()
print("case3 v_loss clipped =", float(v_loss))
show("case3 grad newvalue (clipped)", newvalue.grad)
newvalue.grad = None
v_plain = 0.5 * mmean((newvalue - b_returns) ** 2, mask)
v_plain.backward()
print("case3 v_loss plain =", float(v_plain))
show("case3 grad newvalue (plain)", newvalue.grad)

# ---- case 4: exact KL(pi_old || pi_new) per token over the vocabulary, and the penalty surrogate
old_logits = torch.tensor([[[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]])      # (1, 2, 3)
new_logits = torch.tensor([[[1.2, -0.3, -0.5], [0.0, 1.0, 2.5]]], requires_grad=True)
old_lp = old_logits.log_softmax(-1)
new_lp = new_logits.log_softmax(-1)
kl = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=old_logits),
                                       torch.distributions.Categorical(logits=new_logits))   # (1, 2)
show("case4 exact kl", kl)
actions = torch.tensor([[2, 1]])
logratio = new_lp.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - old_lp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
adv = torch.tensor([[0.7, -1.3]])
beta = 0.5
m = torch.ones(1, 2)
penalty_loss = mmean(-adv * logratio.exp() + beta * kl, m)
penalty_loss.backward()
show("case4 logratio", logratio)
print("case4 penalty loss (beta 0.5) =", float(penalty_loss))
show("case4 grad new_logits", new_logits.grad)
