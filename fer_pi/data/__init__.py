"""Paired clean/occluded data from ``occsynth generate`` manifests, joint augmentation, loaders."""
from .paired import (EpochSampler, PairedDataset, build_loader, canonical_landmark_fn,
                     manifest_splits, read_manifest, set_loader_epoch)
from .transforms import IMAGENET_MEAN, IMAGENET_STD, JointAugment, denormalize, to_tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EpochSampler", "JointAugment", "PairedDataset",
           "build_loader", "canonical_landmark_fn", "denormalize", "manifest_splits",
           "read_manifest", "set_loader_epoch", "to_tensor"]
