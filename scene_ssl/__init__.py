"""scene_ssl: self-supervised pretraining on scene images (MLS, BAM + IA-CLoss, MoCo v2, SimSiam, DenseCL)."""
__version__ = "0.1.0"
