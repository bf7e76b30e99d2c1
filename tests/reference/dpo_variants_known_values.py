"""Known values for chapter 7's losses beyond DPO (hinge, SimPO, ORPO, KTO) — tests/Chapters.Tests/DpoTests.cs
pastes what this prints.

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/dpo_variants_known_values.py

Each loss is written the way Hugging Face TRL writes it (B pairs; log-probabilities of whole completions):

    hinge (DPOTrainer, loss_type="hinge"; SLiC, Zhao et al. 2023), summed log-probs:
        logits = (pc - pr) - (rc - rr);            losses = relu(1 - beta * logits)
    simpo (CPOTrainer, loss_type="simpo", cpo_alpha=0; Meng et al. 2024), log-probs averaged per token:
        logits = pc_avg - pr_avg - gamma / beta;   losses = -logsigmoid(beta * logits)
    orpo (ORPOTrainer.odds_ratio_loss; Hong et al. 2024), log-probs averaged per token, lambda = TRL's beta:
        log_odds = (pc_avg - pr_avg) - (log1p(-exp(pc_avg)) - log1p(-exp(pr_avg)))
        losses = -pc_avg - lambda * logsigmoid(log_odds)      # the NLL of the chosen answer, per token
    kto (KTOTrainer.kto_loss; Ethayarajh et al. 2024), summed log-probs, chosen = desirable, rejected = undesirable:
        z0 = clamp(mean(kl_policy - kl_reference), min=0), no gradient   # on mismatched (prompt, completion) pairs
        chosen_losses   = 1 - sigmoid(beta * ((pc - rc) - z0))
        rejected_losses = 1 - sigmoid(beta * (z0 - (pr - rr)))
        loss = mean(cat(w_d * chosen_losses, w_u * rejected_losses))
"""
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def show(name, t):
    print(f"{name} = [{', '.join(repr(float(x)) for x in t.reshape(-1))}]")


# Summed log-probs of three pairs (chosen, rejected) under the policy and the reference, and the token counts.
pc = torch.tensor([-2.0, -6.5, -1.2])
pr = torch.tensor([-3.0, -4.0, -7.5])
rc = torch.tensor([-2.4, -6.0, -1.0])
rr = torch.tensor([-2.8, -4.6, -6.0])
nc = torch.tensor([3.0, 5.0, 2.0])
nr = torch.tensor([4.0, 2.0, 5.0])

# hinge, beta = 0.1 and beta = 2 (both sides of the hinge)
for beta in (0.1, 2.0):
    pcg, prg = pc.clone().requires_grad_(), pr.clone().requires_grad_()
    h = (pcg - prg) - (rc - rr)
    losses = torch.relu(1 - beta * h)
    losses.mean().backward()
    show(f"hinge_beta{beta}_losses", losses)
    show(f"hinge_beta{beta}_grad_chosen", pcg.grad)
    show(f"hinge_beta{beta}_grad_rejected", prg.grad)

# simpo, beta = 2, gamma = 1 (gamma / beta = 0.5)
beta, gamma = 2.0, 1.0
pcg, prg = pc.clone().requires_grad_(), pr.clone().requires_grad_()
logits = pcg / nc - prg / nr - gamma / beta
losses = -F.logsigmoid(beta * logits)
losses.mean().backward()
show("simpo_losses", losses)
show("simpo_grad_chosen", pcg.grad)
show("simpo_grad_rejected", prg.grad)

# orpo, lambda = 0.1
lam = 0.1
pcg, prg = pc.clone().requires_grad_(), pr.clone().requires_grad_()
ca, ra = pcg / nc, prg / nr
log_odds = (ca - ra) - (torch.log1p(-torch.exp(ca)) - torch.log1p(-torch.exp(ra)))
losses = -ca - lam * F.logsigmoid(log_odds)
losses.mean().backward()
show("orpo_log_odds", log_odds)
show("orpo_losses", losses)
show("orpo_grad_chosen", pcg.grad)
show("orpo_grad_rejected", prg.grad)

# kto, beta = 0.1, w_d = w_u = 1; mismatched pairs' summed log-probs for z0
beta = 0.1
klp = torch.tensor([-5.0, -3.5, -4.0])
klr = torch.tensor([-4.5, -4.0, -3.0])
z0 = (klp - klr).mean().clamp(min=0)
pcg, prg = pc.clone().requires_grad_(), pr.clone().requires_grad_()
chosen = 1 - torch.sigmoid(beta * ((pcg - rc) - z0))
rejected = 1 - torch.sigmoid(beta * (z0 - (prg - rr)))
loss = torch.cat([chosen, rejected]).mean()
loss.backward()
print("kto_z0 =", repr(float(z0)))
show("kto_chosen_losses", chosen)
show("kto_rejected_losses", rejected)
print("kto_loss =", repr(float(loss)))
show("kto_grad_chosen", pcg.grad)
show("kto_grad_rejected", prg.grad)
# a positive z0: the reference point moves up
klp2 = torch.tensor([-3.0, -2.5, -4.0])
z0b = (klp2 - klr).mean().clamp(min=0)
print("kto_z0_positive =", repr(float(z0b)))
show("kto_chosen_losses_z0_positive", 1 - torch.sigmoid(beta * ((pc - rc) - z0b)))
show("kto_rejected_losses_z0_positive", 1 - torch.sigmoid(beta * (z0b - (pr - rr))))
