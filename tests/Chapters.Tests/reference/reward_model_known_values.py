# Known values for tests/Chapters.Tests/RewardModelTests.cs (chapter 5, the Bradley–Terry reward model),
# computed with PyTorch:   /usr/bin/python3 tests/Chapters.Tests/reference/reward_model_known_values.py
# The scores are the hand-made example: r_c = [1, 0.5, −0.2], r_r = [0, 0.7, −1.2], margins [0.5, 0, 1].
# Prints the Bradley–Terry loss −mean log σ(r_c − r_r − m) without and with the margins, its gradients with
# respect to r_c and r_r, the centring term η·mean (r_c + r_r)² with η = 0.01 and its gradient, and Pearson's r
# of a small hand-made (score, gold) set.
import torch
import torch.nn.functional as F

torch.set_printoptions(precision=17)
rc = torch.tensor([1.0, 0.5, -0.2], dtype=torch.float64, requires_grad=True)
rr = torch.tensor([0.0, 0.7, -1.2], dtype=torch.float64, requires_grad=True)
m = torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64)

loss = -F.logsigmoid(rc - rr).mean()
gc, gr = torch.autograd.grad(loss, [rc, rr])
print("bt", float(loss), "grad_c", [float(x) for x in gc], "grad_r", [float(x) for x in gr])

loss_m = -F.logsigmoid(rc - rr - m).mean()
gc, gr = torch.autograd.grad(loss_m, [rc, rr])
print("bt_margin", float(loss_m), "grad_c", [float(x) for x in gc], "grad_r", [float(x) for x in gr])

centre = 0.01 * ((rc + rr) ** 2).mean()
gc, gr = torch.autograd.grad(centre, [rc, rr])
print("centre", float(centre), "grad_c", [float(x) for x in gc], "grad_r", [float(x) for x in gr])

x = torch.tensor([0.3, -1.2, 2.5, 0.0, 0.7], dtype=torch.float64)
y = torch.tensor([1.3, 0.0, 1.0, 0.3, 0.0], dtype=torch.float64)
print("pearson", float(torch.corrcoef(torch.stack([x, y]))[0, 1]) if hasattr(torch, "corrcoef") else None)
