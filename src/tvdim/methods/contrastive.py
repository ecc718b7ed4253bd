"""amdim, tvdim, tvdim-nce and clip: one class, switched by which terms are on.

- ``intra``: AMDIM's multi-scale NCE between two views (1->5, 1->7, 5->5, both directions, plus regulariser).
- ``inter``: image-text term on global features, ``rank`` (margin hinge, TVDIM) or ``nce`` (InfoNCE), applied to
  both views and averaged, optionally with global-to-local terms. Rows without a caption are skipped.
Negatives always come from the global batch: features are gathered across ranks with gradients.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..config import Config, LossConfig
from ..distributed import current, gather_no_grad, gather_with_grad, global_mean_share
from ..errors import ConfigError
from ..losses import (amdim_nce, info_nce_rows, nt_xent_rows, random_locations, rank_pvalues, ranking_loss_rows,
                      sigmoid_rows, weighted_row_mean)
from ..losses.scores import global_local_scores
from ..method_spec import INTRA_TERMS, resolve_terms
from .base import Method, StepOutput
from .pair_weights import PairWeighting


def _pad_tokens(tokens: torch.Tensor, mask: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``[B, T, D]`` token features and ``[B, T]`` mask to ``length`` tokens when distributed (ranks' batches
    are padded to their own longest caption, and gathering needs one shape)."""
    pad = length - tokens.shape[1]
    if current().world_size == 1 or pad <= 0:
        return tokens, mask
    return torch.nn.functional.pad(tokens, (0, 0, 0, pad)), torch.nn.functional.pad(mask, (0, pad))


Params = dict[str, torch.Tensor]  # a method's learnt loss parameters (logit scale, SigLIP's scale and bias)


def _rank_rows(s_i2t: torch.Tensor, s_t2i: torch.Tensor, offset: int, valid_all: torch.Tensor,
               lc: LossConfig, params: Params) -> torch.Tensor:
    return ranking_loss_rows(s_i2t, s_t2i, offset, lc.margin, lc.hinge, valid_all, lc.gamma)


def _nce_rows(s_i2t: torch.Tensor, s_t2i: torch.Tensor, offset: int, valid_all: torch.Tensor,
              lc: LossConfig, params: Params) -> torch.Tensor:
    scale = clip_scale(params["logit_scale"]) if "logit_scale" in params else 1.0 / lc.temperature
    return info_nce_rows(s_i2t * scale, s_t2i * scale, offset, valid_all)


def _siglip_rows(s_i2t: torch.Tensor, s_t2i: torch.Tensor, offset: int, valid_all: torch.Tensor,
                 lc: LossConfig, params: Params) -> torch.Tensor:
    return sigmoid_rows(s_i2t, offset, params["siglip_log_scale"], params["siglip_bias"], valid_all)


def clip_scale(log_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's learnt logit scale: ``exp(log_scale)``, at most 100."""
    return log_scale.float().exp().clamp(max=100.0)


# image-text terms by name (method_spec.INTER_TERMS): scores ``[B, N]`` both ways -> per-pair loss ``[B]``
INTER_ROWS: dict[str, Callable[[torch.Tensor, torch.Tensor, int, torch.Tensor, LossConfig, Params], torch.Tensor]] = {
    "rank": _rank_rows, "nce": _nce_rows, "siglip": _siglip_rows}
CLIP_INIT_SCALE = math.log(1 / 0.07)  # CLIP's initial logit scale (temperature 0.07)
SIGLIP_INIT = (math.log(10.0), -10.0)  # SigLIP's initial log scale t' and bias b


def projection_head(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    """SimCLR's projection head: Linear -> BN -> ReLU -> Linear, ``[B, n_in] -> [B, n_out]`` (training only)."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, n_out))


class ContrastiveMethod(Method):
    def __init__(self, cfg: Config, tasks: dict[str, int], vocab_size: int | None = None, *, name: str) -> None:
        lc = cfg.loss
        intra, inter, learn_scale = resolve_terms(name, lc.intra_term, lc.inter_term, lc.learn_scale)
        if inter != "none" and inter not in INTER_ROWS:
            raise ConfigError(f"method '{name}': unknown image-text term '{inter}'; known: {', '.join(INTER_ROWS)}")
        if intra not in INTRA_TERMS:
            raise ConfigError(f"method '{name}': unknown intra-image term '{intra}'; known: {', '.join(INTRA_TERMS)}")
        self.name, self.intra, self.inter = name, intra, inter
        self.uses_text = inter != "none"
        # r5 heads serve only the AMDIM term; text token heads (and r7 heads without it) only the local terms
        self.uses_all_parameters = intra == "amdim" and (inter == "none" or lc.local)
        super().__init__(cfg, tasks, vocab_size)
        # the local maps feed only AMDIM's terms and the global-to-local image-text terms
        self.image_encoder.want_local = intra == "amdim" or (inter != "none" and lc.local)
        d = self.image_encoder.n_rkhs
        self.proj = projection_head(d, lc.proj_hidden or d, lc.proj_dim) if intra == "simclr" else None
        self.logit_scale = nn.Parameter(torch.tensor(CLIP_INIT_SCALE)) if learn_scale and inter == "nce" else None
        self.siglip_log_scale = nn.Parameter(torch.tensor(SIGLIP_INIT[0])) if inter == "siglip" else None
        self.siglip_bias = nn.Parameter(torch.tensor(SIGLIP_INIT[1])) if inter == "siglip" else None
        # robust image-text term: per-pair weights from the distribution of per-pair losses (noisy captions)
        self.pair_weights = PairWeighting(lc) if self.uses_text and lc.robust != "none" else None

    def loss_params(self) -> Params:
        """The learnt parameters of the image-text term (empty for fixed-temperature terms)."""
        names = ("logit_scale", "siglip_log_scale", "siglip_bias")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    # --- loss terms -------------------------------------------------------------------------------------------
    def intra_terms(self, r1: tuple, r5: tuple, r7: tuple, offset: int) -> dict[str, torch.Tensor]:
        """AMDIM NCE. ``r1[v]``: ``[B, D]``; ``r5[v]``: ``[B, D, 5, 5]``; ``r7[v]``: ``[B, D, 7, 7]`` for views v=0,1."""
        lc = self.cfg.loss
        kw = dict(pos_offset=offset, tclip=lc.nce_tclip, reg_coef=lc.nce_reg, chunk_size=lc.chunk_size)
        t5 = [gather_with_grad(r.flatten(2)) for r in r5]  # [N, D, 25]
        t7 = [gather_with_grad(r.flatten(2)) for r in r7]  # [N, D, 49]
        terms, reg = {}, 0.0
        for name, srcs, tgts in (("1t5", r1, t5), ("1t7", r1, t7),
                                 ("5t5", [random_locations(r) for r in r5], t5)):
            (l12, g12), (l21, g21) = amdim_nce(srcs[0], tgts[1], **kw), amdim_nce(srcs[1], tgts[0], **kw)
            terms[f"nce_{name}"] = 0.5 * (l12 + l21)
            reg = reg + 0.5 * (g12 + g21)
        terms["nce_reg"] = reg
        return terms

    def simclr_terms(self, r1: tuple, offset: int) -> dict[str, torch.Tensor]:
        """SimCLR's NT-Xent on the projections of both views' ``r1`` ``[B, D]``; negatives from the global batch."""
        assert self.proj is not None
        z = [self.proj(r) for r in r1]  # [B, proj_dim] per view
        rows = nt_xent_rows(z[0], z[1], gather_with_grad(z[0]), gather_with_grad(z[1]), offset,
                            self.cfg.loss.simclr_temperature)
        return {"simclr": rows.mean()}

    def _inter_rows(self, s_i2t: torch.Tensor, s_t2i: torch.Tensor, offset: int,
                    valid_all: torch.Tensor) -> torch.Tensor:
        """Per-pair image-text loss ``[B]`` from scores ``[B, N]`` (ranking or InfoNCE form)."""
        return INTER_ROWS[self.inter](s_i2t, s_t2i, offset, valid_all, self.cfg.loss, self.loss_params())

    def _pair_weights(self, rows: list[torch.Tensor], valid_all: torch.Tensor, offset: int,
                      s_i2t: list[torch.Tensor]) -> torch.Tensor | None:
        """Weights ``[B]`` of this rank's pairs, computed over the gathered global batch (identical on all ranks).
        ``s_i2t``: each view's image-to-text scores ``[B, N]`` (for ``storey``'s rank p-values)."""
        if self.pair_weights is None:
            return None
        per_pair = (sum(rows) / len(rows)).detach()  # [B], mean over the two views
        pvalues = None
        if self.pair_weights.mode == "storey":  # one rank per pair: of its caption under the views' mean score
            pvalues = gather_no_grad(rank_pvalues(sum(s.detach() for s in s_i2t) / len(s_i2t), offset, valid_all))
        weights = self.pair_weights(gather_no_grad(per_pair), valid_all, pvalues)
        return None if weights is None else weights[offset:offset + per_pair.shape[0]]

    def inter_terms(self, r1: tuple, r7: tuple, batch: dict, offset: int) -> dict[str, torch.Tensor]:
        """Image-text term. Global features are cosine-compared; local terms mirror DIM's global-to-local pairs."""
        assert self.text_encoder is not None
        txt = self.text_encoder(batch["ids"], batch["mask"], tokens=self.cfg.loss.local)
        valid = batch["has_text"]
        valid_all = gather_no_grad(valid)
        t_all = gather_with_grad(txt.sentence)
        t_norm = torch.nn.functional.normalize(txt.sentence.float(), dim=-1)
        t_all_norm = torch.nn.functional.normalize(t_all.float(), dim=-1)
        glob, local, scores = [], [], []
        for v in range(2):
            g = torch.nn.functional.normalize(r1[v].float(), dim=-1)
            g_all = gather_with_grad(g)
            scores.append(g @ t_all_norm.T)
            glob.append(self._inter_rows(scores[-1], t_norm @ g_all.T, offset, valid_all))
            if self.cfg.loss.local:
                loc_img = gather_with_grad(r7[v].flatten(2).transpose(1, 2))  # [N, 49, D]
                assert txt.tokens is not None
                tokens, mask = _pad_tokens(txt.tokens, batch["mask"], self.cfg.text.max_len)  # same T on all ranks
                tok_all = gather_with_grad(tokens)  # [N, T, D]
                mask_all = gather_no_grad(mask)
                s_t_img = global_local_scores(txt.sentence, loc_img)  # text global vs image locations [B, N]
                s_i_tok = global_local_scores(r1[v], tok_all, mask_all)  # image global vs text tokens [B, N]
                local.append(self._inter_rows(s_i_tok, s_t_img, offset, valid_all))
        weights = self._pair_weights(glob, valid_all, offset, scores)
        share = global_mean_share(valid, valid_all)  # ranks may hold different numbers of captioned rows
        terms = {f"inter_{self.inter}": share * sum(weighted_row_mean(r, weights, valid) for r in glob) / 2}
        if local:
            terms[f"inter_{self.inter}_local"] = share * sum(weighted_row_mean(r, weights, valid) for r in local) / 2
        return terms

    # --- step -------------------------------------------------------------------------------------------------
    def forward(self, batch: dict) -> StepOutput:
        x1, x2 = batch["x1"], batch["x2"]
        b = x1.shape[0]
        r1, r5, r7 = self.image_encoder(torch.cat([x1, x2]))
        r1 = r1.split(b)
        r5, r7 = (r5.split(b), r7.split(b)) if r5 is not None and r7 is not None else ((None, None), (None, None))
        offset = current().rank * b
        terms: dict[str, torch.Tensor] = {}
        loss = x1.new_zeros((), dtype=torch.float32)
        if self.intra != "none":
            it = self.intra_terms(r1, r5, r7, offset) if self.intra == "amdim" else self.simclr_terms(r1, offset)
            terms.update(it)
            loss = loss + sum(it.values())
        if self.inter != "none":
            it = self.inter_terms(r1, r7, batch, offset)
            terms.update(it)
            weight = self.cfg.loss.lam if self.intra != "none" else 1.0
            loss = loss + weight * sum(it.values())
        out = StepOutput(loss, {k: v.detach() for k, v in terms.items()})
        if self.pair_weights is not None:
            out.metrics.update(self.pair_weights.last)
        if self.logit_scale is not None:
            out.metrics["logit_scale"] = clip_scale(self.logit_scale).detach()
        if self.siglip_log_scale is not None and self.siglip_bias is not None:
            out.metrics["siglip_scale"] = self.siglip_log_scale.detach().float().exp()
            out.metrics["siglip_bias"] = self.siglip_bias.detach().float()
        out.loss = loss + self.probe_step(torch.cat(r1), batch.get("labels", {}), out, views=2)  # as AMDIM
        out.terms["total"] = out.loss.detach()
        return out
