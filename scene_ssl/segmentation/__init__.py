"""Semantic-segmentation transfer: mmseg's FCN / PSPNet on any pretrained timm backbone, mIoU."""
from .config import SegmentationConfig
from .data import SegmentationDataset, load_segmentation_set
from .inference import slide_logits, slide_windows
from .metrics import class_areas, segmentation_scores
from .model import FCNHead, PSPHead, Segmenter, build_segmenter

__all__ = ["SegmentationConfig", "SegmentationDataset", "load_segmentation_set", "slide_logits", "slide_windows",
           "class_areas", "segmentation_scores", "FCNHead", "PSPHead", "Segmenter", "build_segmenter"]
