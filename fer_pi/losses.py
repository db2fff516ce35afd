"""The loss terms of Pan et al. (2019), one function per equation.

Notation: ``y_o`` student (occluded-network) logits ``(B, K)``, ``y_c`` teacher (clean-network)
logits ``(B, K)``, ``y`` labels ``(B,) int64``, ``d_*`` discriminator logits ``(B,)``.
Every function returns a scalar tensor (mean over the batch). The overall objective (Eq. 8) is
``loss_cls + l1*loss_sim + l2*loss_ineq + l3*loss_adv + l4*loss_rec``, summed by the training loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def loss_cls(y_o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Supervised term ``l_sup(y, y_o)`` (Section 4.1): cross-entropy of the student on occluded images."""
    return F.cross_entropy(y_o.float(), y)


def loss_sim(y_o: torch.Tensor, y_c: torch.Tensor, on: str = "probs") -> torch.Tensor:
    """Similarity constraint, Eq. 1: ``||y_o - y_c||^2`` (sum over classes, mean over the batch).

    ``on="probs"`` (default) compares softmax outputs. Why: the paper's ``y_hat`` is the network's
    prediction, the same quantity ``l_sup`` scores, and SVM2K constrains the two views' *outputs*;
    probabilities are bounded (the term lies in [0, 2]) so ``lambda_1`` does not depend on logit
    scale, and logits are only defined up to a per-sample shift, a freedom an L2 on logits would
    needlessly constrain. ``on="logits"`` is kept for experiments. The teacher side is detached
    (it is frozen during fine-tuning anyway).
    """
    if on == "probs":
        p_o, p_c = y_o.float().softmax(dim=1), y_c.detach().float().softmax(dim=1)
    elif on == "logits":
        p_o, p_c = y_o.float(), y_c.detach().float()
    else:
        raise ValueError(f"on must be 'probs' or 'logits', got {on!r}")
    return (p_o - p_c).pow(2).sum(dim=1).mean()


def loss_ineq(y_o: torch.Tensor, y_c: torch.Tensor, y: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Loss-inequality regulariser (LIR), Eq. 3: ``[l_sup(y, y_c) - l_sup(y, y_o)]_+`` per sample, mean.

    Eq. 2 states the prior that the occluded loss should be at least the clean loss (plus
    ``epsilon = margin >= 0``); Eq. 3 penalises each sample that violates it. The teacher's loss is
    detached: only the student moves. The gradient acts only on samples where the student is
    already more confident than the clean-face teacher, keeping it from over-fitting them.
    """
    ce_c = F.cross_entropy(y_c.detach().float(), y, reduction="none")
    ce_o = F.cross_entropy(y_o.float(), y, reduction="none")
    return torch.relu(ce_c + margin - ce_o).mean()


def loss_adv(d_fake: torch.Tensor) -> torch.Tensor:
    """Adversarial loss of the student, Eq. 6: ``-log D(h_o)`` (non-saturating), as BCE-with-logits
    of the discriminator's logits on student features against the "clean" target 1."""
    return F.binary_cross_entropy_with_logits(d_fake.float(), torch.ones_like(d_fake, dtype=torch.float32))


def loss_disc(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss, Eq. 5: ``-log D(h_c) - log(1 - D(h_o))`` (each term a batch mean).

    ``d_real`` are D's logits on teacher features (target 1), ``d_fake`` on *detached* student
    features (target 0).
    """
    real = F.binary_cross_entropy_with_logits(d_real.float(), torch.ones_like(d_real, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(d_fake.float(), torch.zeros_like(d_fake, dtype=torch.float32))
    return real + fake


def loss_rec(x_rec: torch.Tensor, x_clean01: torch.Tensor) -> torch.Tensor:
    """Reconstruction loss, Eq. 7: ``||x_hat - x_c||^2`` as the mean squared error (Section 4.3.2).

    Both images are in ``[0, 1]`` RGB: the decoder ends in a sigmoid and the clean target is
    de-normalised from the ImageNet-normalised batch (:func:`fer_pi.data.denormalize`).
    """
    return F.mse_loss(x_rec.float(), x_clean01.float())
