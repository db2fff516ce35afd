"""Paired clean/occluded data from ``occsynth generate`` manifests or WebDataset shards, joint
augmentation, loaders."""
from .paired import (EpochSampler, PairedDataset, build_loader, canonical_landmark_fn,
                     manifest_splits, read_manifest, set_loader_epoch)
from .stream import ShardStream, is_shard_source, open_split, split_shards
from .transforms import IMAGENET_MEAN, IMAGENET_STD, JointAugment, denormalize, to_tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EpochSampler", "JointAugment", "PairedDataset",
           "ShardStream", "is_shard_source", "open_split", "split_shards",
           "build_loader", "canonical_landmark_fn", "denormalize", "manifest_splits",
           "read_manifest", "set_loader_epoch", "to_tensor"]
