"""Two multiple-instance baselines on the global features f_i: not in the paper, added
so that ISG is also measured against the aggregators a computational-pathology reader expects.

* ``abmil``: gated attention-based MIL (Ilse, Tomczak & Welling, "Attention-based Deep Multiple
  Instance Learning", ICML 2018, Eq. 9):

      h_i = ReLU(W f_i),   a_i = softmax_i( w^T (tanh(V h_i) * sigmoid(U h_i)) ),   z = sum_i a_i h_i,

  then a linear head on z.  The attention is over the slide's real patches only.
* ``mean-mlp``: the masked mean of f over the real patches, then a two-layer MLP.  The simplest
  slide model there is (HE2RNA's MSI path, :class:`~isg_core.models.baselines.he2rna.HE2RNAMSI`,
  for regression as well): what any aggregator must beat to claim it reads more than the
  slide's average patch.

Both read f only (R is ignored and may be None), ignore the order of the patches and anything in
the padded rows, and are called as ``model(f, R, mask, pos)`` -> (B, n_outputs).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from isg_core.models.baselines.vit import check_inputs, masked_tokens
from isg_core.models.traits import GLOBAL, ModelTraits


@dataclass(frozen=True)
class MILConfig:
    """``hidden``: the width of h_i (ABMIL) or of the MLP's hidden layer (mean-MLP); ``attention``:
    the width of ABMIL's gated attention (V and U); ``dropout`` on h (and the MLP's hidden layer)."""

    hidden: int = 64
    attention: int = 32
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.attention < 1:
            raise ValueError(f"hidden and attention widths must be >= 1, got {self.hidden}, {self.attention}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class _GlobalMIL(nn.Module):
    """What both models share: the config, a per-patch (or pooled) Linear(d, hidden) -> ReLU ->
    Dropout, and the linear head (its bias set by ``bias_init``, as for every baseline)."""

    config_class = MILConfig
    traits = ModelTraits(reads=GLOBAL)  # R is ignored: InputStandardizer leaves it alone

    def __init__(self, d: int, grid: int, n_outputs: int, config: MILConfig | None = None,
                 bias_init: torch.Tensor | None = None, **overrides):
        super().__init__()
        self.config = cfg = replace(config or MILConfig(), **overrides)
        self.d, self.grid = d, grid
        self.embed = nn.Sequential(nn.Linear(d, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout))
        self.head = nn.Linear(cfg.hidden, n_outputs)
        if bias_init is not None:
            with torch.no_grad():
                self.head.bias.copy_(torch.as_tensor(bias_init, dtype=torch.float32).reshape(n_outputs))

    def _check(self, f, R, mask, pos) -> None:
        if pos is not None:
            check_inputs(f, R, mask, pos, self.d, self.grid, need_f=True, need_R=False)


class ABMIL(_GlobalMIL):
    """Gated attention MIL (Ilse et al. 2018, Eq. 9) on the global features; see the module doc.
    ``attention_weights(f, mask)`` gives the a_i (B, N), 0 on padded rows."""

    def __init__(self, d: int, grid: int, n_outputs: int, config: MILConfig | None = None,
                 bias_init: torch.Tensor | None = None, **overrides):
        super().__init__(d, grid, n_outputs, config, bias_init, **overrides)
        cfg = self.config
        self.V = nn.Linear(cfg.hidden, cfg.attention)
        self.U = nn.Linear(cfg.hidden, cfg.attention)
        self.w = nn.Linear(cfg.attention, 1)

    def _attend(self, f: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(masked_tokens(f, mask))
        logits = self.w(torch.tanh(self.V(h)) * torch.sigmoid(self.U(h)))[..., 0]
        logits = logits.masked_fill(~mask, float("-inf"))
        a = torch.softmax(logits, dim=1)
        return torch.nan_to_num(a, nan=0.0), h  # a slide without a real patch: all-zero weights

    def attention_weights(self, f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._attend(f, mask.bool())[0]

    def forward(self, f: torch.Tensor, R: torch.Tensor | None, mask: torch.Tensor,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        self._check(f, R, mask, pos)
        a, h = self._attend(f, mask.bool())
        return self.head(torch.einsum("bn,bnh->bh", a, h))


class MeanPoolMLP(_GlobalMIL):
    """The masked mean of f over the real patches, then Linear -> ReLU -> Dropout -> Linear."""

    def forward(self, f: torch.Tensor, R: torch.Tensor | None, mask: torch.Tensor,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        self._check(f, R, mask, pos)
        m = mask.bool()
        pooled = masked_tokens(f, m).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        return self.head(self.embed(pooled))
