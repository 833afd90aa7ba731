"""Detection transfer: fine-tune torchvision's Faster / Mask R-CNN on any pretrained timm backbone, COCO AP."""
from .data import DetectionDataset, DetectionSet, collate_detection, load_detection_set
from .evaluate import AP_NAMES, coco_ap, to_coco_results
from .model import NORMS, TASKS, TimmFPN, build_detector, load_trunk

__all__ = ["DetectionSet", "DetectionDataset", "load_detection_set", "collate_detection", "AP_NAMES", "coco_ap",
           "to_coco_results", "NORMS", "TASKS", "TimmFPN", "build_detector", "load_trunk"]
