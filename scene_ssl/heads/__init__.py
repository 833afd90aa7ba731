"""Projection, prediction and probe heads."""
from .densecl import DenseProjectionHead
from .moco import MoCoV2ProjectionHead
from .multilabel import MultiLabelLinearHead
from .simsiam import SimSiamPredictionHead, SimSiamProjectionHead

__all__ = ["MoCoV2ProjectionHead", "SimSiamProjectionHead", "SimSiamPredictionHead", "MultiLabelLinearHead",
           "DenseProjectionHead"]
