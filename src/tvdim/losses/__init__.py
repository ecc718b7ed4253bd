"""Pure loss functions (no state): every shape is in the docstrings."""
from .classifier import classifier_loss
from .infonce import info_nce, info_nce_from_scores, info_nce_rows
from .nce import amdim_nce, random_locations, tanh_clip
from .ntxent import nt_xent, nt_xent_rows
from .ranking import ranking_loss, ranking_loss_from_scores, ranking_loss_rows
from .robust import clean_probability, fit_two_gaussians, rank_pvalues, small_loss_mask, storey_null_fraction, weighted_row_mean
from .sigmoid import sigmoid_rows

__all__ = ["amdim_nce", "random_locations", "tanh_clip", "ranking_loss", "ranking_loss_from_scores",
           "ranking_loss_rows", "info_nce", "info_nce_from_scores", "info_nce_rows", "classifier_loss",
           "clean_probability", "fit_two_gaussians", "small_loss_mask", "rank_pvalues", "storey_null_fraction",
           "weighted_row_mean", "nt_xent", "nt_xent_rows", "sigmoid_rows"]
