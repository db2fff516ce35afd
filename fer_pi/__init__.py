"""fer_pi: occluded facial expression recognition with privileged information (Pan et al., MM 2019).

A clean-face network (teacher, frozen after pre-training) guides an occluded-face network
(student) through similarity, loss-inequality, adversarial and reconstruction losses.
Submodules import torch; this package's top level does not.
"""
__version__ = "0.1.0"
