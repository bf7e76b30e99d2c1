"""Known values for chapter 7 (DPO) — tests/Chapters.Tests/DpoTests.cs pastes what this prints.

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/dpo_known_values.py

The loss formulas follow Hugging Face TRL's DPOTrainer.dpo_loss (trl/trainer/dpo_trainer.py, v0.7–0.8):

    pi_logratios  = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    logits = pi_logratios - ref_logratios
    sigmoid: losses = -logsigmoid(beta*logits)*(1-label_smoothing) - logsigmoid(-beta*logits)*label_smoothing
    ipo:     losses = (logits - 1/(2*beta))**2          # eqn (17) of Azar et al. 2023, beta = their tau
    chosen_rewards   = beta * (policy_chosen_logps - reference_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps).detach()

with log-probabilities summed over completion tokens, except for IPO where TRL's concatenated_forward
passes average_log_prob=True (the sum divided by the number of completion tokens). The Plackett-Luce
loss is Rafailov et al. 2023, appendix A.3 (eq. 18 with the implicit reward of eq. 5):
    -sum_k log( exp(r_{tau(k)}) / sum_{j>=k} exp(r_{tau(j)}) ),   r = beta*(log pi - log pi_ref).
"""
import torch
import torch.nn.functional as F

torch.set_printoptions(precision=17)
torch.set_default_dtype(torch.float64)


def dpo(pc, pr, rc, rr, beta, label_smoothing=0.0):
    logits = (pc - pr) - (rc - rr)
    losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    return losses, beta * (pc - rc), beta * (pr - rr)


def ipo(pc, pr, rc, rr, beta):
    logits = (pc - pr) - (rc - rr)
    return (logits - 1 / (2 * beta)) ** 2


def show(name, t):
    print(f"{name} = [{', '.join(repr(float(x)) for x in t.reshape(-1))}]")


# 1. The DPO case (summed log-probs), beta = 0.1.
pc = torch.tensor([-0.5, -10.0, -1.0])
pr = torch.tensor([-0.1, -30.0, -21.0])
rc = torch.tensor([-0.5, -10.1, -0.1])
rr = torch.tensor([-0.1, -20.1, -0.1])
losses, cr, rj = dpo(pc, pr, rc, rr, 0.1)
show("dpo_losses", losses)
show("dpo_rewards_chosen", cr)
show("dpo_rewards_rejected", rj)
show("dpo_margins", cr - rj)
show("cdpo_losses_eps0.1", dpo(pc, pr, rc, rr, 0.1, 0.1)[0])
# The gradient of the mean loss with respect to the policy's chosen and rejected log-probs.
pcg, prg = pc.clone().requires_grad_(), pr.clone().requires_grad_()
dpo(pcg, prg, rc, rr, 0.1)[0].mean().backward()
show("dpo_grad_chosen", pcg.grad)
show("dpo_grad_rejected", prg.grad)
pcg, prg = pc.clone().requires_grad_(), pr.clone().requires_grad_()
dpo(pcg, prg, rc, rr, 0.1, 0.1)[0].mean().backward()
show("cdpo_grad_chosen", pcg.grad)

# 2. IPO on a hand-made batch of per-token log-probs (B = 3 pairs, M = 4 tokens, masks of different
#    lengths): length-normalised log-probs as TRL's average_log_prob, beta = 0.1 and 0.5.
tok_pc = torch.tensor([[-0.2, -1.1, -0.3, -0.05], [-2.0, -0.7, -0.9, -1.5], [-0.4, -0.6, -0.1, -0.8]])
tok_pr = torch.tensor([[-0.9, -1.4, -0.2, -0.6], [-1.0, -0.3, -0.2, -0.4], [-2.5, -1.7, -0.3, -0.2]])
tok_rc = torch.tensor([[-0.3, -1.0, -0.4, -0.1], [-1.8, -0.6, -1.0, -1.2], [-0.5, -0.9, -0.2, -0.7]])
tok_rr = torch.tensor([[-0.7, -1.2, -0.3, -0.5], [-1.1, -0.4, -0.3, -0.6], [-1.9, -1.5, -0.4, -0.1]])
mask_c = torch.tensor([[1., 1., 1., 0.], [1., 1., 1., 1.], [1., 1., 0., 0.]])
mask_r = torch.tensor([[1., 1., 0., 0.], [1., 1., 1., 1.], [1., 1., 1., 0.]])


def avg(t, m):
    return (t * m).sum(-1) / m.sum(-1)


def total(t, m):
    return (t * m).sum(-1)


show("ipo_avg_chosen", avg(tok_pc, mask_c))
show("ipo_avg_rejected", avg(tok_pr, mask_r))
for beta in (0.1, 0.5):
    show(f"ipo_losses_beta{beta}", ipo(avg(tok_pc, mask_c), avg(tok_pr, mask_r), avg(tok_rc, mask_c), avg(tok_rr, mask_r), beta))
show("sum_chosen", total(tok_pc, mask_c))
show("dpo_losses_tokens_beta0.1", dpo(total(tok_pc, mask_c), total(tok_pr, mask_r), total(tok_rc, mask_c), total(tok_rr, mask_r), 0.1)[0])


# 3. Plackett-Luce on rankings of K = 3 and K = 4 (log-probs of each ranked response, best first).
def plackett_luce(policy, ref, beta):
    r = beta * (policy - ref)                                   # (B, K), best first
    # log of the probability of the observed order: sum_k [r_k - logsumexp(r_k..r_K)]
    rev_lse = torch.logcumsumexp(r.flip(-1), -1).flip(-1)       # (B, K): logsumexp over j >= k
    return -(r - rev_lse).sum(-1)


pl_pol = torch.tensor([[-1.0, -3.0, -2.0], [-4.0, -0.5, -6.0]])
pl_ref = torch.tensor([[-2.0, -2.5, -1.0], [-3.0, -1.5, -5.0]])
for beta in (0.1, 1.0):
    pol = pl_pol.clone().requires_grad_()
    l = plackett_luce(pol, pl_ref, beta)
    show(f"pl3_losses_beta{beta}", l)
    l.mean().backward()
    show(f"pl3_grad_beta{beta}", pol.grad)
pl4_pol = torch.tensor([[-1.5, -0.8, -2.2, -4.0]])
pl4_ref = torch.tensor([[-1.0, -1.0, -2.0, -2.0]])
show("pl4_losses_beta0.5", plackett_luce(pl4_pol, pl4_ref, 0.5))
# K = 2 is DPO: the case as rankings (chosen first).
show("pl2_equals_dpo", plackett_luce(torch.stack([pc, pr], 1), torch.stack([rc, rr], 1), 0.1))
