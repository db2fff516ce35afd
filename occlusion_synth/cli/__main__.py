"""``python -m occlusion_synth.cli`` runs the ``occsynth`` command line."""
from . import main

main()
