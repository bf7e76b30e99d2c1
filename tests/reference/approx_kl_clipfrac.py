"""Known values of the approximate KL and the clip fractions each chapter logs, computed with PyTorch in float64.

Prints the numbers pasted into tests/Chapters.Tests/LoggedDiagnosticsTests.cs. One hand-made masked batch of
log-ratios log ρ = log π_θ − log π_old and advantages, each diagnostic written the way its reference writes it
(a masked mean over the real tokens replaces the reference's .mean()):

* CleanRL ppo.py (chapters 4 and 6): old_approx_kl = (−logratio).mean(), approx_kl = ((ratio − 1) − logratio).mean(),
  clipfracs = ((ratio − 1.0).abs() > clip_coef).float().mean()                                  -> chapter 4's clipfrac
* TRL PPOTrainer (chapter 6): pg_clipfrac = masked_mean(torch.gt(pg_losses2, pg_losses).float(), mask)
  with pg_losses = −A·ratio, pg_losses2 = −A·clamp(ratio, 1 − ε, 1 + ε)                  -> policy/clipfrac_avg
* TRL GRPOTrainer (chapter 8): is_low_clipped = (ratio < 1 − ε) & (A < 0), is_high_clipped = (ratio > 1 + ε) & (A > 0),
  clip_ratio/region_mean = masked mean of their union                                     -> clip_ratio/region_mean

    /usr/bin/python3 tests/reference/approx_kl_clipfrac.py      # torch 1.13 (Debian's python3-torch)
"""
import torch

torch.set_default_dtype(torch.float64)


def mmean(x, m):
    return float((x * m).sum() / m.sum())


# Two completions of four tokens; the second ends after three (its last column is padding, with values that
# would change every answer if they were counted). ε = 0.2.
logratio = torch.tensor([[0.30, -0.25, 0.05, -0.10], [0.19, -0.40, 0.26, 5.0]])
adv = torch.tensor([[1.0, -0.5, -2.0, 0.7], [-1.5, 0.3, 2.5, -9.0]])
mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
eps = 0.2
ratio = logratio.exp()

print("old_approx_kl (k1) =", repr(mmean(-logratio, mask)))
print("approx_kl (k3) =", repr(mmean((ratio - 1) - logratio, mask)))
print("wrong k3 that chapter 6 used to log, mean(e^-logratio - 1 + logratio) =",
      repr(mmean(torch.exp(-logratio) - 1 + logratio, mask)))
print("cleanrl clipfrac =", repr(mmean(((ratio - 1.0).abs() > eps).double(), mask)))
pg_losses = -adv * ratio
pg_losses2 = -adv * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
print("trl ppo pg_clipfrac =", repr(mmean(torch.gt(pg_losses2, pg_losses).double(), mask)))
low = (ratio < 1 - eps) & (adv < 0)
high = (ratio > 1 + eps) & (adv > 0)
print("trl grpo clip_ratio/region_mean =", repr(mmean((low | high).double(), mask)))
# Per-completion advantages broadcast over the tokens, as chapter 8 has them.
adv_seq = torch.tensor([[0.8], [-1.2]])
low = (ratio < 1 - eps) & (adv_seq < 0)
high = (ratio > 1 + eps) & (adv_seq > 0)
print("trl grpo clip_ratio/region_mean, per-completion advantages =", repr(mmean((low | high).double(), mask)))
