"""Everything is declared in setup.cfg; this file only adds the optional C extension.

``occlusion_synth.landmarks._shape68`` evaluates dlib's 68-point predictor on a compact copy of
its model (occlusion_synth/landmarks/_shape68.c). It is optional: where no C compiler is found the
install goes on without it and the landmark backends use dlib's own predictor.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "occlusion_synth.landmarks._shape68", ["occlusion_synth/landmarks/_shape68.c"],
    optional=True, extra_compile_args=["-O3", "-ffp-contract=off"])])
