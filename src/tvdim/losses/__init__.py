"""Pure loss functions (no state): every shape is in the docstrings."""
from .classifier import classifier_loss
from .infonce import info_nce, info_nce_from_scores
from .nce import amdim_nce, random_locations, tanh_clip
from .ranking import ranking_loss, ranking_loss_from_scores

__all__ = ["amdim_nce", "random_locations", "tanh_clip", "ranking_loss", "ranking_loss_from_scores", "info_nce",
           "info_nce_from_scores", "classifier_loss"]
