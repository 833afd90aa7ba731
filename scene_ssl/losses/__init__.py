"""Losses for self-supervised learning on scene images.

>>> from scene_ssl.losses import MLSLoss, InfoNCELoss, ImageAwareContrastiveLoss, DenseContrastiveLoss
"""
from . import functional
from .dense_contrastive import DenseContrastiveLoss, dense_correspondence
from .functional import mls_pseudo_labels, mls_topk
from .image_aware_contrastive import ImageAwareContrastiveLoss
from .info_nce import InfoNCELoss
from .knn_softmax import KNNSoftmaxLoss
from .mls import MLSLoss
from .negative_cosine import NegativeCosineLoss

__all__ = [
    "functional",
    "mls_pseudo_labels",
    "mls_topk",
    "InfoNCELoss",
    "MLSLoss",
    "KNNSoftmaxLoss",
    "NegativeCosineLoss",
    "ImageAwareContrastiveLoss",
    "DenseContrastiveLoss",
    "dense_correspondence",
]
