"""``python -m fer_pi.cli`` (and ``torchrun -m fer_pi.cli train ...``) run the ``fer-pi`` command line."""
from . import main

main()
