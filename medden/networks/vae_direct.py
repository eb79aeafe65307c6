"""A ladder VAE and the Direct Denoiser that learns its posterior's central tendency, as one module.

Salmon & Krull ("Direct unsupervised denoising") train a hierarchical VAE on noisy images
alone and, alongside it, a U-Net that regresses the VAE's posterior samples: with an L2 loss
the U-Net converges to the posterior mean (MMSE estimate), with L1 to the pixel-wise median
(MMAE). Inference is then one U-Net pass instead of hundreds of VAE samples.

:class:`VAEDirectDenoiser` holds both networks. ``forward(x)`` is the Direct Denoiser alone
(a plain tensor, so MONAI's bundle tooling and inferers treat it like any denoiser);
``forward(x, stage=...)`` computes the training losses of one step, inside ``forward`` so
that ``DistributedDataParallel`` synchronises the gradients of both networks.

Pairing: a Direct Denoiser is only meaningful with the VAE it learned from. Every
:class:`~medden.networks.LadderVAE` carries a random ``model_id`` and every
:class:`~medden.networks.DirectDenoiser` the ``teacher_id`` of the VAE it was trained on;
loading weights whose ids disagree is refused (:func:`check_pairing`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medden.networks.direct_denoiser import DirectDenoiser
from medden.networks.ladder_vae import LadderVAE, VAEKeys
from medden.core.validation import check_finite

__all__ = ["DIRECT_LOSSES", "STAGES", "PairingError", "VAEDirectDenoiser", "check_pairing", "load_teacher_vae"]

#: what the Direct Denoiser regresses: "l2" -> posterior mean (MMSE), "l1" -> median (MMAE)
DIRECT_LOSSES = {"l2": F.mse_loss, "l1": F.l1_loss}
#: "cotrain": the seed's step (VAE and Direct Denoiser together); "vae": the VAE alone;
#: "direct": the Direct Denoiser alone, on samples of a trained, frozen VAE
STAGES = ("cotrain", "vae", "direct")
DIRECT_LOSS = "direct_loss"


class PairingError(ValueError):
    """A Direct Denoiser combined with a VAE it was not trained on."""


def check_pairing(vae: LadderVAE, direct: DirectDenoiser) -> None:
    """Refuse a Direct Denoiser that learned the posterior of a different VAE.

    Raises:
        PairingError: ``direct.teacher_id`` is set and differs from ``vae.model_id``.
    """
    teacher, vae_id = int(direct.teacher_id), int(vae.model_id)
    if teacher != 0 and teacher != vae_id:
        raise PairingError(
            f"the Direct Denoiser was trained on the posterior of VAE {teacher}, but the VAE loaded is {vae_id}: "
            "its output would not be this VAE's posterior mean/median. Load both from the same checkpoint, or "
            "train the Direct Denoiser on this VAE (stage 'direct')."
        )


class VAEDirectDenoiser(nn.Module):
    """A :class:`LadderVAE` with its co-trained :class:`DirectDenoiser`.

    Args:
        vae: the ladder VAE (its noise model inside).
        direct: the Direct Denoiser; its ``teacher_id`` is set to ``vae.model_id`` unless it
            was already trained on another VAE (then :class:`PairingError`).
        direct_loss: ``"l2"`` (the Direct Denoiser learns the posterior mean, MMSE) or
            ``"l1"`` (pixel-wise median, MMAE).

    Shapes:
        ``forward(x)``: ``(B, C, H, W)`` float in data units to the same shape (the Direct
        Denoiser's estimate). ``forward(x, stage)`` returns a dict of scalars (see
        :meth:`forward`).
    """

    def __init__(self, vae: LadderVAE, direct: DirectDenoiser, direct_loss: str = "l2") -> None:
        super().__init__()
        if direct_loss not in DIRECT_LOSSES:
            raise ValueError(f"direct_loss must be one of {sorted(DIRECT_LOSSES)} (l2: posterior mean, l1: median), "
                             f"got {direct_loss!r}.")
        check_pairing(vae, direct)
        direct.teacher_id.copy_(vae.model_id)
        self.vae, self.direct, self.direct_loss = vae, direct, direct_loss
        # a calibrated (frozen) noise model stays frozen whatever the stage
        self._noise_model_trains = any(p.requires_grad for p in vae.noise_model.parameters())
        self.register_load_state_dict_post_hook(lambda module, incompatible: check_pairing(module.vae, module.direct))

    def set_stage(self, stage: str) -> VAEDirectDenoiser:
        """Freeze what ``stage`` does not train (``requires_grad``), so optimisers and DDP see
        only the trained network; returns ``self`` (for bundle configs)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}.")
        self.vae.requires_grad_(stage != "direct")
        self.direct.requires_grad_(stage != "vae")
        self.vae.noise_model.requires_grad_(stage != "direct" and self._noise_model_trains)
        return self

    def forward(self, x: torch.Tensor, stage: str | None = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """The Direct Denoiser's estimate, or (``stage`` given) one training step's losses.

        Args:
            x: noisy images ``(B, C, H, W)`` float, data units.
            stage: None for inference; else one of :data:`STAGES`.

        Returns:
            ``stage`` None: ``(B, C, H, W)`` tensor. Otherwise a dict with ``"loss"`` (the
            scalar to minimise: ELBO loss + Direct Denoiser loss, or either alone) and the
            parts ``"elbo_loss"``, ``"kl"``, ``"log_likelihood"`` (nats per pixel) and
            ``"direct_loss"`` where computed. The Direct Denoiser's target, one posterior
            sample per input, is detached: its loss never updates the VAE.

        Raises:
            ValueError: ``x`` holds NaN or inf, or ``stage`` is unknown.
        """
        if not torch.jit.is_tracing():  # a traced export keeps no Python-side checks
            check_finite(x, "x")
        if stage is None:
            return self.direct(x)
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}.")
        losses: dict[str, torch.Tensor] = {}
        if stage == "direct":
            self.vae.eval()  # frozen teacher: dropout off, no gradients
            with torch.no_grad():
                target = self.vae.sample_posterior(x, 1)[0]
        else:
            out = self.vae(x)
            target = out[VAEKeys.SIGNAL].detach()
            losses.update({key: out[key] for key in (VAEKeys.ELBO_LOSS, VAEKeys.KL, VAEKeys.LOG_LIKELIHOOD)})
        if stage != "vae":
            losses[DIRECT_LOSS] = DIRECT_LOSSES[self.direct_loss](self.direct(x), target)
        losses["loss"] = sum(losses[k] for k in (VAEKeys.ELBO_LOSS, DIRECT_LOSS) if k in losses)
        return losses


def load_teacher_vae(model: VAEDirectDenoiser, checkpoint) -> VAEDirectDenoiser:
    """Load a trained VAE into ``model`` for stage ``"direct"`` (the Direct Denoiser will be
    trained on its posterior, so it is paired with it: ``teacher_id`` is set to its id).

    Args:
        model: the wrapper whose ``vae`` is filled.
        checkpoint: a path or state dict of a :class:`VAEDirectDenoiser` (its ``vae.*``
            entries are used) or of a bare :class:`LadderVAE`.

    Returns:
        ``model``.

    Raises:
        CheckpointError: the VAE weights do not fit ``model.vae``.
    """
    from medden.io.checkpoint import load_checkpoint, load_network_weights

    state = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    if any(key.startswith("vae.") for key in state):
        state = {key[len("vae."):]: value for key, value in state.items() if key.startswith("vae.")}
    load_network_weights(model.vae, state)
    model.direct.teacher_id.copy_(model.vae.model_id)
    return model
